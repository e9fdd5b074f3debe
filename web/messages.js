/**
 * messages.js: every word the widget (verify.js) and the onboarding page (index.html,
 * app.js) show or say, per language, in one table (ES module, no dependencies).
 *
 *   import { messagesFor } from './messages.js';
 *   const m = messagesFor({ lang: 'de', messages: { widget: { done: 'Fertig!' } } });
 *
 * Shipped: English (`en`, also the fallback for any missing entry) and German (`de`).
 * The language is the `lang` option when one is shipped for it (`de-AT` takes `de`),
 * else the first of the browser's `navigator.languages` that is, else English.
 * `messages` overrides entries of the chosen language (same shape, any subset), or
 * brings a whole new language: `start({ lang: 'fr', messages: { ...every entry... } })`.
 * Texts with `{name}` placeholders are filled by `format`.
 */

export const MESSAGES = {
  en: {
    /* What each challenge action asks. `say` is the instruction; hold-and-release
       actions also have `hold` (shown once the person has had time to react) and
       `release` (said when the service's `release` message arrives). "Left" is the
       person's own left. */
    prompts: {
      eyes_closed: {
        say: 'Close your eyes',
        detail: 'Keep them closed until you hear a tone.',
        hold: 'Keep your eyes closed until you hear the tone.',
        release: 'Open your eyes',
      },
      mouth_open: {
        say: 'Open your mouth wide',
        detail: 'Keep it open until we say so.',
        hold: 'Keep your mouth wide open.',
        release: 'Close your mouth',
      },
      turn_left: {
        say: 'Turn your head to your left',
        detail: 'Keep it turned until we say so.',
        hold: 'Keep your head turned to your left.',
        release: 'Face the camera',
      },
      turn_right: {
        say: 'Turn your head to your right',
        detail: 'Keep it turned until we say so.',
        hold: 'Keep your head turned to your right.',
        release: 'Face the camera',
      },
      // Actions of the first protocol, still accepted in an explicit list: no hold.
      blink: { say: 'Blink', detail: 'Once, now.' },
      mouth: { say: 'Move your mouth', detail: 'Open and close it once.' },
    },
    /* challenge_failed reasons (spec section 2.1): [title, what to do]. */
    failures: {
      too_early: ['Too early',
        'You moved before the instruction appeared. Wait for each instruction, then follow it.'],
      too_late: ["We didn't see it in time",
        'Start as soon as the instruction appears, and keep your face inside the oval.'],
      wrong_action: ['A different movement',
        'We saw another movement than the one asked for. Do only what the instruction says.'],
      hold_broken: ['Released too soon',
        'Hold the position until we tell you to release it.'],
      not_delivered: ["The instructions didn't arrive",
        'The instructions could not reach this page in time. Check your connection and try again.'],
    },
    /* `progress` hints, `connection` (unstable) and the page's own `weak link`. */
    hints: {
      'no face': "We can't see your face. Look straight at the camera.",
      'too far': 'Come a little closer.',
      'too dark': 'It is too dark. Find more light, facing you.',
      'too bright': 'Too much light. Move away from the lamp or window behind you.',
      'hold still': 'Hold still.',
      'several faces': 'Only one person should be in view.',
      unstable: 'Your connection is unstable. Hold on, or move to a better signal.',
      // the page's own measurement (verify.js, linkReading), shown beside the other hints
      'weak link': 'Your connection is too weak for the check: video is getting lost or delayed. Move closer to your Wi-Fi or to a better signal.',
    },
    widget: {
      starting: 'Starting the camera…',
      connecting: 'Connecting…',
      placeFace: 'Place your face inside the oval',
      good: 'Good. Keep your face inside the oval.',
      step: 'Step {n} of {total}',
      allDone: 'All steps done',
      hold: 'Hold…',
      release: 'Release',
      done: 'Done',
      checking: 'Checking…',
    },
    /* VerifyError messages: plain words for the person in front of the camera. */
    errors: {
      sessionExpired: 'This verification session has expired.',
      sessionUsed: 'This verification link has already been used. Go back to the site that sent you here to get a new one.',
      busy: 'The verification service is busy. Please try again in a minute.',
      linkInvalid: 'This verification link is not valid. Go back to the site that sent you here to get a new one.',
      noDemo: 'This server does not start verifications by itself. Use the link given by the site that sent you here.',
      sessionGone: 'This verification session does not exist any more. Start again.',
      serviceProblem: 'The verification service had a problem. Please try again.',
      refused: 'The verification service refused to start ({detail}).',
      cameraDenied: 'Camera access was blocked. Allow the camera for this site (the camera icon in the address bar), then press Retry.',
      noCamera: 'No camera was found. Connect a camera, or open this page on a phone, then press Retry.',
      cameraBusy: 'The camera could not be started. Close other apps that may be using it, then press Retry.',
      cameraFailed: 'The camera could not be started ({name}).',
      insecure: 'The camera can only be used on a secure (https) page.',
      noCameraApi: 'This browser cannot use the camera. Try a current Chrome, Firefox or Safari.',
      noWebRtc: 'This browser cannot stream video. Try a current Chrome, Firefox or Safari.',
      aborted: 'You cancelled the check.',
      unreachable: 'Could not reach the verification service. Check your connection and press Retry.',
      unexpectedAnswer: 'The verification service sent an unexpected answer.',
      connectionLost: 'The connection to the verification service was lost. Press Retry to start again.',
      cannotConnect: 'Could not connect the video to the verification service. A firewall or VPN may block it.',
      noAnswer: 'The verification service did not answer in time. Press Retry to start again.',
    },
    /* The onboarding page (index.html and app.js). */
    page: {
      title: 'Identity check',
      brand: 'Identity check',
      introTitle: "Let's check that it's really you",
      lead: 'This takes about 20 seconds. We need your camera to see that a real person is in front of it, not a photo or a recording.',
      howCamera: ['Allow the camera', ' when your browser asks.'],
      howOval: ['Keep your face inside the oval', ', in good light.'],
      howPrompts: ['Follow the prompts', ': close your eyes, open your mouth or turn your head, and hold it until we say release.'],
      howSound: ['Turn your sound on', ': with your eyes closed, a tone tells you when to open them.'],
      privacy: 'The video is analysed while you are connected and is not recorded. Once the result is ready, the frames and any ID photo are deleted.',
      portraitTitle: 'ID photo',
      optional: '(optional)',
      portraitHelp: 'Add a photo of your ID document to check that it shows you.',
      dropText: 'Drop a photo here or ',
      chooseFile: 'choose a file',
      removePhoto: 'Remove photo',
      start: 'Allow camera and start',
      liveLabel: 'Liveness check',
      cancel: 'Cancel',
      technical: 'Technical details (service response)',
      startAgain: 'Start again',
      retry: 'Retry',
      notImage: 'That file is not an image. Choose a JPEG or PNG photo.',
      tooLarge: 'That photo is too large (over 7 MB). Choose a smaller one.',
      photoAlt: 'ID photo: {name}',
      noDecisionTitle: "We couldn't complete the check",
      noDecision: 'No decision was made',
      noDecisionText: '{reason}. Try again in good light, facing the camera.',
      networkTitle: 'Your connection is unstable',
      networkText: 'The video did not get through well enough to decide. Move to a better signal (or Wi-Fi) and try again.',
      verified: "You're verified",
      liveAndSame: 'A live person was seen, and it is the person on the ID photo.',
      live: 'A live person was seen.',
      mismatchTitle: "The face doesn't match the ID photo",
      mismatch: 'A live person was seen, but not the person on the ID photo.',
      notLiveTitle: "We couldn't confirm a live person",
      notLive: 'Try again in good light, facing the camera, and follow each prompt.',
      failedBecause: '{what}. {todo}',
      linkOnceRetry: 'This link works only once: go back to the site that sent you here to try again.',
      linkOnceNew: 'This link works only once: go back to the site that sent you here to get a new one.',
      expiredRetry: 'Press Retry to start a new one.',
      factLive: 'Live person',
      factBlink: 'Blinking seen',
      factMouth: 'Mouth movement seen',
      factReplaced: 'Face replaced during the video',
      factPrompts: 'Prompts followed',
      factSame: 'Same person as the ID photo',
      yes: 'yes',
      no: 'no',
      withScore: '{value} (score {score})',
      promptsFollowed: '{met} of {total}',
      details: 'Details: {detail}',
      unexpected: 'Something unexpected happened. Press Retry to start again.',
      linkDamaged: 'This verification link is damaged. Go back to the site that sent you here and open it again.',
      errorTitles: {
        'camera-denied': 'Camera access is blocked',
        'no-camera': 'No camera found',
        'camera-busy': "The camera didn't start",
        'session-expired': 'This session has expired',
        'session-used': 'This link has been used',
        'session-refused': "The check couldn't start",
        busy: 'The service is busy',
        network: 'Connection problem',
        aborted: 'Check cancelled',
        other: 'Something went wrong',
      },
    },
  },

  de: {
    prompts: {
      eyes_closed: {
        say: 'Schließen Sie die Augen',
        detail: 'Halten Sie sie geschlossen, bis Sie einen Ton hören.',
        hold: 'Halten Sie die Augen geschlossen, bis Sie den Ton hören.',
        release: 'Öffnen Sie die Augen',
      },
      mouth_open: {
        say: 'Öffnen Sie den Mund weit',
        detail: 'Halten Sie ihn offen, bis wir es Ihnen sagen.',
        hold: 'Halten Sie den Mund weit offen.',
        release: 'Schließen Sie den Mund',
      },
      turn_left: {
        say: 'Drehen Sie den Kopf nach links',
        detail: 'Halten Sie ihn gedreht, bis wir es Ihnen sagen.',
        hold: 'Halten Sie den Kopf nach links gedreht.',
        release: 'Schauen Sie in die Kamera',
      },
      turn_right: {
        say: 'Drehen Sie den Kopf nach rechts',
        detail: 'Halten Sie ihn gedreht, bis wir es Ihnen sagen.',
        hold: 'Halten Sie den Kopf nach rechts gedreht.',
        release: 'Schauen Sie in die Kamera',
      },
      blink: { say: 'Blinzeln Sie', detail: 'Einmal, jetzt.' },
      mouth: { say: 'Bewegen Sie den Mund', detail: 'Einmal öffnen und schließen.' },
    },
    failures: {
      too_early: ['Zu früh',
        'Sie haben sich bewegt, bevor die Anweisung erschien. Warten Sie jede Anweisung ab und folgen Sie ihr dann.'],
      too_late: ['Nicht rechtzeitig erkannt',
        'Beginnen Sie, sobald die Anweisung erscheint, und halten Sie Ihr Gesicht im Oval.'],
      wrong_action: ['Eine andere Bewegung',
        'Wir haben eine andere als die verlangte Bewegung gesehen. Tun Sie nur, was die Anweisung sagt.'],
      hold_broken: ['Zu früh gelöst',
        'Halten Sie die Position, bis wir Ihnen sagen, dass Sie sie lösen können.'],
      not_delivered: ['Die Anweisungen kamen nicht an',
        'Die Anweisungen haben diese Seite nicht rechtzeitig erreicht. Prüfen Sie Ihre Verbindung und versuchen Sie es erneut.'],
    },
    hints: {
      'no face': 'Wir sehen Ihr Gesicht nicht. Schauen Sie direkt in die Kamera.',
      'too far': 'Kommen Sie etwas näher.',
      'too dark': 'Es ist zu dunkel. Suchen Sie mehr Licht von vorn.',
      'too bright': 'Zu viel Licht. Gehen Sie weg von der Lampe oder dem Fenster hinter Ihnen.',
      'hold still': 'Halten Sie still.',
      'several faces': 'Nur eine Person sollte zu sehen sein.',
      unstable: 'Ihre Verbindung ist instabil. Bitte warten Sie oder suchen Sie besseren Empfang.',
      'weak link': 'Ihre Verbindung ist zu schwach für die Prüfung: Das Video kommt verzögert oder lückenhaft an. Gehen Sie näher an Ihr WLAN oder suchen Sie besseren Empfang.',
    },
    widget: {
      starting: 'Kamera wird gestartet…',
      connecting: 'Verbindung wird aufgebaut…',
      placeFace: 'Bringen Sie Ihr Gesicht ins Oval',
      good: 'Gut. Halten Sie Ihr Gesicht im Oval.',
      step: 'Schritt {n} von {total}',
      allDone: 'Alle Schritte erledigt',
      hold: 'Halten…',
      release: 'Lösen',
      done: 'Erledigt',
      checking: 'Wird geprüft…',
    },
    errors: {
      sessionExpired: 'Diese Prüfsitzung ist abgelaufen.',
      sessionUsed: 'Dieser Prüflink wurde bereits verwendet. Kehren Sie zu der Website zurück, die Sie hierher geschickt hat, um einen neuen zu erhalten.',
      busy: 'Der Prüfdienst ist ausgelastet. Bitte versuchen Sie es in einer Minute erneut.',
      linkInvalid: 'Dieser Prüflink ist ungültig. Kehren Sie zu der Website zurück, die Sie hierher geschickt hat, um einen neuen zu erhalten.',
      noDemo: 'Dieser Server startet keine Prüfungen von sich aus. Verwenden Sie den Link der Website, die Sie hierher geschickt hat.',
      sessionGone: 'Diese Prüfsitzung existiert nicht mehr. Beginnen Sie von vorn.',
      serviceProblem: 'Beim Prüfdienst ist ein Problem aufgetreten. Bitte versuchen Sie es erneut.',
      refused: 'Der Prüfdienst hat den Start abgelehnt ({detail}).',
      cameraDenied: 'Der Kamerazugriff wurde blockiert. Erlauben Sie die Kamera für diese Website (das Kamerasymbol in der Adressleiste) und tippen Sie dann auf „Erneut versuchen“.',
      noCamera: 'Es wurde keine Kamera gefunden. Schließen Sie eine Kamera an oder öffnen Sie diese Seite auf einem Telefon und tippen Sie dann auf „Erneut versuchen“.',
      cameraBusy: 'Die Kamera konnte nicht gestartet werden. Schließen Sie andere Apps, die sie verwenden könnten, und tippen Sie dann auf „Erneut versuchen“.',
      cameraFailed: 'Die Kamera konnte nicht gestartet werden ({name}).',
      insecure: 'Die Kamera kann nur auf einer sicheren (https-)Seite verwendet werden.',
      noCameraApi: 'Dieser Browser kann die Kamera nicht verwenden. Versuchen Sie ein aktuelles Chrome, Firefox oder Safari.',
      noWebRtc: 'Dieser Browser kann kein Video übertragen. Versuchen Sie ein aktuelles Chrome, Firefox oder Safari.',
      aborted: 'Sie haben die Prüfung abgebrochen.',
      unreachable: 'Der Prüfdienst ist nicht erreichbar. Prüfen Sie Ihre Verbindung und tippen Sie auf „Erneut versuchen“.',
      unexpectedAnswer: 'Der Prüfdienst hat eine unerwartete Antwort gesendet.',
      connectionLost: 'Die Verbindung zum Prüfdienst ist abgebrochen. Tippen Sie auf „Erneut versuchen“, um neu zu beginnen.',
      cannotConnect: 'Das Video konnte nicht mit dem Prüfdienst verbunden werden. Eine Firewall oder ein VPN blockiert es möglicherweise.',
      noAnswer: 'Der Prüfdienst hat nicht rechtzeitig geantwortet. Tippen Sie auf „Erneut versuchen“, um neu zu beginnen.',
    },
    page: {
      title: 'Identitätsprüfung',
      brand: 'Identitätsprüfung',
      introTitle: 'Prüfen wir, ob Sie es wirklich sind',
      lead: 'Das dauert etwa 20 Sekunden. Wir brauchen Ihre Kamera, um zu sehen, dass ein echter Mensch davor ist und kein Foto oder eine Aufnahme.',
      howCamera: ['Erlauben Sie die Kamera', ', wenn Ihr Browser fragt.'],
      howOval: ['Halten Sie Ihr Gesicht im Oval', ', bei gutem Licht.'],
      howPrompts: ['Folgen Sie den Anweisungen', ': Augen schließen, Mund öffnen oder Kopf drehen, und halten Sie es, bis wir „lösen“ sagen.'],
      howSound: ['Schalten Sie den Ton ein', ': Bei geschlossenen Augen sagt Ihnen ein Ton, wann Sie sie öffnen sollen.'],
      privacy: 'Das Video wird analysiert, solange Sie verbunden sind, und nicht aufgezeichnet. Sobald das Ergebnis vorliegt, werden die Bilder und ein etwaiges Ausweisfoto gelöscht.',
      portraitTitle: 'Ausweisfoto',
      optional: '(optional)',
      portraitHelp: 'Fügen Sie ein Foto Ihres Ausweises hinzu, um zu prüfen, dass er Sie zeigt.',
      dropText: 'Foto hierher ziehen oder ',
      chooseFile: 'Datei auswählen',
      removePhoto: 'Foto entfernen',
      start: 'Kamera erlauben und starten',
      liveLabel: 'Lebendprüfung',
      cancel: 'Abbrechen',
      technical: 'Technische Details (Antwort des Dienstes)',
      startAgain: 'Neu beginnen',
      retry: 'Erneut versuchen',
      notImage: 'Diese Datei ist kein Bild. Wählen Sie ein JPEG- oder PNG-Foto.',
      tooLarge: 'Dieses Foto ist zu groß (über 7 MB). Wählen Sie ein kleineres.',
      photoAlt: 'Ausweisfoto: {name}',
      noDecisionTitle: 'Die Prüfung konnte nicht abgeschlossen werden',
      noDecision: 'Es wurde keine Entscheidung getroffen',
      noDecisionText: '{reason}. Versuchen Sie es bei gutem Licht erneut, mit dem Gesicht zur Kamera.',
      networkTitle: 'Ihre Verbindung ist instabil',
      networkText: 'Das Video kam nicht gut genug an, um zu entscheiden. Suchen Sie besseren Empfang (oder WLAN) und versuchen Sie es erneut.',
      verified: 'Sie sind verifiziert',
      liveAndSame: 'Ein lebender Mensch wurde erkannt, und es ist die Person auf dem Ausweisfoto.',
      live: 'Ein lebender Mensch wurde erkannt.',
      mismatchTitle: 'Das Gesicht passt nicht zum Ausweisfoto',
      mismatch: 'Ein lebender Mensch wurde erkannt, aber nicht die Person auf dem Ausweisfoto.',
      notLiveTitle: 'Wir konnten keinen lebenden Menschen bestätigen',
      notLive: 'Versuchen Sie es bei gutem Licht erneut, mit dem Gesicht zur Kamera, und folgen Sie jeder Anweisung.',
      failedBecause: '{what}. {todo}',
      linkOnceRetry: 'Dieser Link funktioniert nur einmal: Kehren Sie zu der Website zurück, die Sie hierher geschickt hat, um es erneut zu versuchen.',
      linkOnceNew: 'Dieser Link funktioniert nur einmal: Kehren Sie zu der Website zurück, die Sie hierher geschickt hat, um einen neuen zu erhalten.',
      expiredRetry: 'Tippen Sie auf „Erneut versuchen“, um eine neue zu starten.',
      factLive: 'Lebender Mensch',
      factBlink: 'Blinzeln erkannt',
      factMouth: 'Mundbewegung erkannt',
      factReplaced: 'Gesicht während des Videos ausgetauscht',
      factPrompts: 'Befolgte Anweisungen',
      factSame: 'Dieselbe Person wie auf dem Ausweisfoto',
      yes: 'ja',
      no: 'nein',
      withScore: '{value} (Wert {score})',
      promptsFollowed: '{met} von {total}',
      details: 'Details: {detail}',
      unexpected: 'Etwas Unerwartetes ist passiert. Tippen Sie auf „Erneut versuchen“, um neu zu beginnen.',
      linkDamaged: 'Dieser Prüflink ist beschädigt. Kehren Sie zu der Website zurück, die Sie hierher geschickt hat, und öffnen Sie ihn erneut.',
      errorTitles: {
        'camera-denied': 'Der Kamerazugriff ist blockiert',
        'no-camera': 'Keine Kamera gefunden',
        'camera-busy': 'Die Kamera ist nicht gestartet',
        'session-expired': 'Diese Sitzung ist abgelaufen',
        'session-used': 'Dieser Link wurde bereits verwendet',
        'session-refused': 'Die Prüfung konnte nicht starten',
        busy: 'Der Dienst ist ausgelastet',
        network: 'Verbindungsproblem',
        aborted: 'Prüfung abgebrochen',
        other: 'Etwas ist schiefgelaufen',
      },
    },
  },
};

export const LANGUAGES = Object.keys(MESSAGES);

/** The shipped language for `lang` ('de-AT' -> 'de'), or null. */
function shipped(lang, table) {
  if (!lang) return null;
  const tag = String(lang).toLowerCase();
  if (table[tag]) return tag;
  const base = tag.split('-')[0];
  return table[base] ? base : null;
}

/** The language to use: `lang` if messages are shipped for it, or if `extra` (an
 * integrator's table) is given for it; else the browser's first shipped preference;
 * else English. */
export function pickLanguage(lang = null, extra = null) {
  const found = shipped(lang, MESSAGES);
  if (found) return found;
  if (lang && extra) return String(lang).toLowerCase();
  const browser = [...(globalThis.navigator?.languages || []), globalThis.navigator?.language];
  return browser.map((l) => shipped(l, MESSAGES)).find(Boolean) || 'en';
}

function isPlainObject(value) {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function merge(base, over) {
  if (!isPlainObject(over)) return base;
  const out = { ...base };
  for (const [key, value] of Object.entries(over)) {
    out[key] = isPlainObject(value) && isPlainObject(base?.[key]) ? merge(base[key], value) : value;
  }
  return out;
}

/** The message table to use: English, overlaid by the chosen language, overlaid by the
 * integrator's `messages`. `lang` on the result names the language chosen. */
export function messagesFor({ lang = null, messages = null } = {}) {
  const chosen = pickLanguage(lang, messages);
  const table = merge(merge(MESSAGES.en, MESSAGES[chosen]), messages);
  return { ...table, lang: chosen };
}

/** `template` with each `{name}` replaced by `values[name]`. */
export function format(template, values = {}) {
  return String(template).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}
