// Maps JSON pointers (RFC 6901) to the line of a JSON text where their value starts, so that a
// validation error "<path>: <pointer>: <reason>" can be shown beside the line it is about.

/** pointer → 1-based line, for every value of `text` (which must be valid JSON). */
export function pointerLines(text) {
  const lines = new Map();
  let at = 0;
  let line = 1;
  const space = () => {
    while (at < text.length && /\s/.test(text[at])) {
      if (text[at] === '\n') line++;
      at++;
    }
  };
  const string = () => {
    const start = at;
    at++;
    while (at < text.length && text[at] !== '"') at += text[at] === '\\' ? 2 : 1;
    at++;
    return JSON.parse(text.slice(start, at));
  };
  const escape = (key) => key.replaceAll('~', '~0').replaceAll('/', '~1');
  const value = (pointer, keyLine) => {
    space();
    lines.set(pointer, keyLine ?? line);
    const c = text[at];
    if (c === '{') {
      at++;
      space();
      if (text[at] === '}') { at++; return; }
      for (;;) {
        space();
        const memberLine = line;
        const key = string();
        space();
        at++; // ':'
        value(`${pointer}/${escape(key)}`, memberLine);
        space();
        if (text[at++] === '}') return;
      }
    } else if (c === '[') {
      at++;
      space();
      if (text[at] === ']') { at++; return; }
      for (let index = 0; ; index++) {
        value(`${pointer}/${index}`);
        space();
        if (text[at++] === ']') return;
      }
    } else if (c === '"') {
      string();
    } else {
      while (at < text.length && !/[\s,\]}]/.test(text[at])) at++;
    }
  };
  value('');
  return lines;
}

/** The line of `pointer` in `lines`, or of its nearest ancestor that is there. */
export function lineOf(lines, pointer) {
  let current = pointer;
  for (;;) {
    if (lines.has(current)) return lines.get(current);
    if (!current) return 1;
    current = current.slice(0, current.lastIndexOf('/'));
  }
}

/** Splits "<path>: <pointer>: <reason>" (the pointer may be empty). */
export function splitError(message) {
  const match = /^(.*?): (\/\S*|): (.*)$/s.exec(message);
  if (!match) return { pointer: '', reason: message };
  return { path: match[1], pointer: match[2], reason: match[3] };
}
