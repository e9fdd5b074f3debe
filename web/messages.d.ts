/** Type declarations of messages.js: every word the widget and the page show or say. */

/** What one challenge action asks; hold-and-release actions also have `hold`, `release`. */
export interface PromptWords {
  say: string;
  detail: string;
  hold?: string;
  release?: string;
}

/** One language's table (messages.js has the full shape; any subset overrides). */
export interface MessageTable {
  prompts: Record<string, PromptWords>;
  /** challenge_failed reasons: [title, what to do]. */
  failures: Record<string, [string, string]>;
  /** `progress` hints, the `connection` one (unstable) and the page's own `weak link`. */
  hints: Record<string, string>;
  widget: Record<string, string>;
  errors: Record<string, string>;
  page: Record<string, any>;
}

/** A table as `messagesFor` answers it: `lang` names the language chosen. */
export type Messages = MessageTable & { lang: string };

/** Partial overrides, same shape, any depth. */
export type MessageOverrides = { [K in keyof MessageTable]?: Partial<MessageTable[K]> }
  & Record<string, unknown>;

export declare const MESSAGES: Record<string, MessageTable>;
export declare const LANGUAGES: string[];
export declare function pickLanguage(lang?: string | null, extra?: object | null): string;
export declare function messagesFor(options?: {
  lang?: string | null;
  messages?: MessageOverrides | null;
}): Messages;
export declare function format(template: string, values?: Record<string, unknown>): string;
