/**
 * A strict well-formedness check for the SVG the lab writes (no DTDs, no CDATA, no comments):
 * every tag closes in order, attributes are quoted and unique, text holds no bare `<` or `&`.
 * Returns the problem found, or undefined when the document is well formed with an `<svg>` root.
 */
export function svgProblem(doc: string): string | undefined {
  const stack: string[] = [];
  let i = 0;
  let roots = 0;
  const entity = /^&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+);/;
  const textOk = (text: string, at: number): string | undefined => {
    for (let k = 0; k < text.length; k++) {
      if (text[k] === '&' && !entity.test(text.slice(k))) return `bare & at ${at + k}`;
    }
    return undefined;
  };
  while (i < doc.length) {
    const lt = doc.indexOf('<', i);
    const text = doc.slice(i, lt < 0 ? doc.length : lt);
    if (stack.length === 0 && text.trim() !== '') return `text outside the root at ${i}`;
    const bad = textOk(text, i);
    if (bad) return bad;
    if (lt < 0) break;
    const gt = doc.indexOf('>', lt);
    if (gt < 0) return `unterminated tag at ${lt}`;
    const tag = doc.slice(lt + 1, gt);
    if (tag.includes('<')) return `< inside a tag at ${lt}`;
    if (tag.startsWith('/')) {
      const name = tag.slice(1).trim();
      if (stack.pop() !== name) return `</${name}> does not close the open element at ${lt}`;
    } else {
      const selfClosing = tag.endsWith('/');
      const body = selfClosing ? tag.slice(0, -1) : tag;
      const m = /^([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*$/.exec(body);
      if (!m) return `malformed tag <${tag.slice(0, 40)}> at ${lt}`;
      const names = [...m[2]!.matchAll(/([\w:-]+)="([^"]*)"/g)];
      const seen = new Set<string>();
      for (const a of names) {
        if (seen.has(a[1]!)) return `duplicate attribute ${a[1]} at ${lt}`;
        seen.add(a[1]!);
        const badAttr = textOk(a[2]!, lt);
        if (badAttr) return badAttr;
      }
      if (stack.length === 0) {
        roots++;
        if (m[1] !== 'svg') return `root element is <${m[1]}>, not <svg>`;
        if (roots > 1) return 'more than one root element';
      }
      if (!selfClosing) stack.push(m[1]!);
    }
    i = gt + 1;
  }
  if (stack.length > 0) return `unclosed <${stack.at(-1)}>`;
  if (roots !== 1) return 'no root element';
  return undefined;
}
