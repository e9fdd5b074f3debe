"""Client media into pixels: images and clips decoded in sandboxed worker processes
(pool.py: never in the service process), EXIF orientation, frame sampling and
downscaling, and the upload glue that turns request bytes into an image or frames.

May import: errors, ops. Nothing that knows about faces."""
