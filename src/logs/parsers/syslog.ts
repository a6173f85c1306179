// Parses one syslog message: RFC 5424, or RFC 3164 read as leniently as syslog-ng reads it (no
// host, no PRI). A message that fits neither is kept raw with `parse_error`; this never throws.

import type { LogEvent } from '../types.js';

export const SEVERITY_NAMES = [
  'emerg',
  'alert',
  'crit',
  'err',
  'warning',
  'notice',
  'info',
  'debug',
] as const;

export const FACILITY_NAMES = [
  'kern',
  'user',
  'mail',
  'daemon',
  'auth',
  'syslog',
  'lpr',
  'news',
  'uucp',
  'cron',
  'authpriv',
  'ftp',
  'ntp',
  'security',
  'console',
  'solaris-cron',
  'local0',
  'local1',
  'local2',
  'local3',
  'local4',
  'local5',
  'local6',
  'local7',
] as const;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

const SP = 0x20;
const LT = 0x3c;
const GT = 0x3e;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN = 0x5b; // [
const CLOSE = 0x5d; // ]
const EQUALS = 0x3d;

// RFC 3339 as RFC 5424 restricts it (a `T`, seconds, an offset), with any number of fraction digits.
const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i;
// A BSD stamp: "Oct 11 22:14:15", "Oct  1 22:14:15", with an optional fraction or year as some
// devices send them ("Oct 11 22:14:15.123", "Oct 11 2024 22:14:15").
const BSD_STAMP = /^([A-Z][a-z]{2}) ([ \d]\d)(?: (\d{4}))? (\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(?= |$)/;
// ISO 8601 stamps some 3164 senders (rsyslog's RSYSLOG_FileFormat, syslog-ng) put where the BSD one goes.
const ISO_STAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?(?= |$)/i;
const HOST = /^[A-Za-z0-9][A-Za-z0-9._:%-]{0,254}$/;
// TAG[PID]: of a 3164 message: a program name of up to 48 characters, then an optional [pid], then a colon.
const TAG = /^([^\s[\]:]{1,48})(?:\[([^\]\s]{0,128})\])?:(?: |$)/;

/**
 * One syslog message as fields: facility, severity, timestamp, hostname, appname, procid, msgid,
 * structured_data and message (NILVALUEs are left out). `now` (ms since the epoch) supplies the
 * year and zone of an RFC 3164 stamp, which has neither.
 */
export function parseSyslog(text: string, now: number): LogEvent {
  let end = text.length;
  // Senders end messages with a newline (or NUL) even in datagrams; it is framing, not content.
  while (end > 0) {
    const c = text.charCodeAt(end - 1);
    if (c !== 0x0a && c !== 0x0d && c !== 0) break;
    end--;
  }
  const s = end === text.length ? text : text.slice(0, end);
  if (s.length === 0) return failed(text, 'empty message');

  let pri = -1;
  let pos = 0;
  if (s.charCodeAt(0) === LT) {
    let i = 1;
    let v = 0;
    while (i < s.length && i <= 4) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      v = v * 10 + (c - 0x30);
      i++;
    }
    if (i === 1 || i > 4 || s.charCodeAt(i) !== GT) return failed(text, 'bad PRI: expected <0> to <191>');
    if (v > 191) return failed(text, `bad PRI: ${v} is above 191`);
    pri = v;
    pos = i + 1;
  }

  // "<PRI>1 " starts RFC 5424; what says so and then breaks its grammar is reported as such.
  if (pri >= 0 && isDigit(s.charCodeAt(pos))) {
    let i = pos;
    while (i < s.length && i - pos < 3 && isDigit(s.charCodeAt(i))) i++;
    if (s.charCodeAt(i) === SP && s.charCodeAt(pos) !== 0x30) return parse5424(text, s, pri, i + 1);
  }
  return parse3164(text, s, pri, pos, now);
}

function parse5424(text: string, s: string, pri: number, start: number): LogEvent {
  const ev: LogEvent = {
    facility: FACILITY_NAMES[pri >> 3],
    severity: SEVERITY_NAMES[pri & 7],
  };
  let pos = start;
  // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID: space-separated, each NILVALUE or printable ASCII.
  for (let f = 0; f < 5; f++) {
    const sp = s.indexOf(' ', pos);
    if (sp < 0 || sp === pos) return failed(text, `RFC 5424: missing ${HEADER_NAMES[f]}`);
    const v = s.slice(pos, sp);
    pos = sp + 1;
    if (v === '-') continue;
    if (!printable(v)) return failed(text, `RFC 5424: ${HEADER_NAMES[f]} is not printable ASCII`);
    if (f === 0) {
      if (!RFC3339.test(v)) return failed(text, `RFC 5424: TIMESTAMP "${clip(v)}" is not RFC 3339`);
      ev.timestamp = v;
    } else ev[HEADER_FIELDS[f]!] = v;
  }

  // STRUCTURED-DATA: "-" or one or more [id name="value" ...] elements.
  if (pos >= s.length) return failed(text, 'RFC 5424: missing STRUCTURED-DATA');
  if (s.charCodeAt(pos) === 0x2d /* - */) {
    pos++;
  } else if (s.charCodeAt(pos) === OPEN) {
    const sd: Record<string, Record<string, string | string[]>> = {};
    while (pos < s.length && s.charCodeAt(pos) === OPEN) {
      const r = parseElement(s, pos + 1, sd);
      if (typeof r === 'string') return failed(text, `RFC 5424: ${r}`);
      pos = r;
    }
    ev.structured_data = sd;
  } else {
    return failed(text, 'RFC 5424: STRUCTURED-DATA must be "-" or start with "["');
  }

  if (pos < s.length) {
    if (s.charCodeAt(pos) !== SP) return failed(text, 'RFC 5424: expected a space after STRUCTURED-DATA');
    pos++;
  }
  // A UTF-8 MSG may start with a BOM, which is a marker, not text.
  if (s.charCodeAt(pos) === 0xfeff) pos++;
  ev.message = pos === 0 ? s : s.slice(pos);
  return ev;
}

const HEADER_NAMES = ['TIMESTAMP', 'HOSTNAME', 'APP-NAME', 'PROCID', 'MSGID'];
const HEADER_FIELDS = ['timestamp', 'hostname', 'appname', 'procid', 'msgid'];

/** Parses one SD-ELEMENT after its "["; returns the position after its "]" or what is wrong. */
function parseElement(s: string, start: number, sd: Record<string, Record<string, string | string[]>>) {
  let pos = start;
  while (pos < s.length && isSdName(s.charCodeAt(pos))) pos++;
  if (pos === start) return 'SD-ID is empty';
  const id = s.slice(start, pos);
  if (id.length > 32) return `SD-ID "${clip(id)}" is longer than 32 characters`;
  if (Object.hasOwn(sd, id)) return `SD-ID "${clip(id)}" appears twice`;
  const params: Record<string, string | string[]> = {};
  sd[id] = params;
  for (;;) {
    const c = s.charCodeAt(pos);
    if (c === CLOSE) return pos + 1;
    if (c !== SP) return `bad character in SD-ELEMENT "${clip(id)}"`;
    pos++;
    const nameStart = pos;
    while (pos < s.length && isSdName(s.charCodeAt(pos))) pos++;
    if (pos === nameStart || pos - nameStart > 32)
      return `SD-PARAM name in "${clip(id)}" is empty or longer than 32 characters`;
    const name = s.slice(nameStart, pos);
    if (s.charCodeAt(pos) !== EQUALS || s.charCodeAt(pos + 1) !== QUOTE)
      return `SD-PARAM "${clip(name)}" needs ="value"`;
    pos += 2;
    // PARAM-VALUE: \" \\ \] are escapes; a backslash before anything else is kept as it is.
    let value = '';
    let run = pos;
    for (;;) {
      if (pos >= s.length) return `SD-PARAM "${clip(name)}" has no closing quote`;
      const v = s.charCodeAt(pos);
      if (v === QUOTE) break;
      if (v === BACKSLASH) {
        const n = s.charCodeAt(pos + 1);
        if (n === QUOTE || n === BACKSLASH || n === CLOSE) {
          value += s.slice(run, pos);
          run = pos + 1;
          pos += 2;
          continue;
        }
      }
      pos++;
    }
    value += s.slice(run, pos);
    pos++;
    // RFC 5424 lets a name repeat within an element; keep every value rather than the last.
    const prev = params[name];
    if (prev === undefined) params[name] = value;
    else if (typeof prev === 'string') params[name] = [prev, value];
    else prev.push(value);
  }
}

function parse3164(text: string, s: string, pri: number, start: number, now: number): LogEvent {
  let pos = start;
  let timestamp: string | undefined;
  const rest = pos === 0 ? s : s.slice(pos);
  const bsd = BSD_STAMP.exec(rest);
  if (bsd) {
    timestamp = bsdTimestamp(bsd, now);
    if (timestamp === undefined) return failed(text, `RFC 3164: bad timestamp "${bsd[0]}"`);
    pos += bsd[0].length;
  } else {
    const iso = ISO_STAMP.exec(rest);
    if (iso) {
      timestamp = iso[0];
      pos += iso[0].length;
    }
  }
  // Without a PRI, only a timestamp says this is syslog at all.
  if (pri < 0 && timestamp === undefined) return failed(text, 'not syslog: no <PRI> and no timestamp');
  if (pri < 0) pri = 13; // RFC 3164 4.3.3: a relay gives a message without PRI user.notice
  const ev: LogEvent = {
    facility: FACILITY_NAMES[pri >> 3],
    severity: SEVERITY_NAMES[pri & 7],
  };
  if (timestamp !== undefined) ev.timestamp = timestamp;
  while (s.charCodeAt(pos) === SP) pos++;

  // HOSTNAME follows the stamp unless the next word is already the TAG ("su:" or "cron[12]:").
  if (timestamp !== undefined && pos < s.length) {
    const sp = s.indexOf(' ', pos);
    const word = sp < 0 ? s.slice(pos) : s.slice(pos, sp);
    if (sp > 0 && !TAG.test(s.slice(pos, sp + 1)) && HOST.test(word)) {
      ev.hostname = word;
      pos = sp + 1;
      while (s.charCodeAt(pos) === SP) pos++;
    }
  }

  const tag = TAG.exec(pos === 0 ? s : s.slice(pos, pos + 200));
  if (tag) {
    ev.appname = tag[1];
    if (tag[2] !== undefined && tag[2] !== '') ev.procid = tag[2];
    pos += tag[0].length;
  }
  if (s.charCodeAt(pos) === 0xfeff) pos++;
  ev.message = pos === 0 ? s : s.slice(pos);
  return ev;
}

/** "Oct 11 22:14:15" in the zone of this host, in the year that puts it nearest to now. */
function bsdTimestamp(m: RegExpExecArray, now: number): string | undefined {
  const month = MONTHS.indexOf(m[1]!);
  const day = Number(m[2]!.trim());
  const h = Number(m[4]);
  const min = Number(m[5]);
  const sec = Number(m[6]);
  if (month < 0 || day < 1 || day > 31 || h > 23 || min > 59 || sec > 60) return undefined;
  let year: number;
  if (m[3] !== undefined) year = Number(m[3]);
  else {
    const today = new Date(now);
    year = today.getFullYear();
    // A stamp from late December read in early January belongs to last year, and one "in the
    // future" by more than a month is from last year too (syslog-ng does the same).
    if (month - today.getMonth() > 1) year--;
    else if (today.getMonth() - month > 10) year++;
  }
  const d = new Date(year, month, day, h, min, Math.min(sec, 59));
  if (d.getDate() !== day) return undefined; // Feb 30 and the like
  const frac = m[7] ?? '';
  return `${pad(year, 4)}-${pad(month + 1, 2)}-${pad(day, 2)}T${m[4]}:${m[5]}:${m[6]}${frac}${offset(d)}`;
}

function offset(d: Date): string {
  const off = -d.getTimezoneOffset();
  if (off === 0) return 'Z';
  const a = Math.abs(off);
  return `${off < 0 ? '-' : '+'}${pad(Math.floor(a / 60), 2)}:${pad(a % 60, 2)}`;
}

function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** SD-NAME: printable ASCII except '=', ' ', ']' and '"'. */
function isSdName(c: number): boolean {
  return c > SP && c < 0x7f && c !== EQUALS && c !== CLOSE && c !== QUOTE;
}

function printable(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c <= SP || c >= 0x7f) return false;
  }
  return true;
}

function clip(v: string): string {
  return v.length > 40 ? `${v.slice(0, 40)}...` : v;
}

function failed(text: string, reason: string): LogEvent {
  return { message: text, parse_error: reason };
}
