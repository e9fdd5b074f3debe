"""WebRTC verification sessions: WHIP signalling, frame intake, data channel, results."""
