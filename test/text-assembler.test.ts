import { describe, expect, it } from 'vitest';
import { TextAssembler } from '../src/speculative/text-assembler.js';

const bytes = (s: string) => new TextEncoder().encode(s);

function run(pieces: Uint8Array[], stops: string[]): { released: string[]; stopped: boolean; final: string } {
  const a = new TextAssembler(stops);
  const released: string[] = [];
  for (const p of pieces) {
    const r = a.push(p);
    released.push(r.text);
    if (r.stopped) return { released, stopped: true, final: '' };
  }
  return { released, stopped: false, final: a.finish().text };
}

describe('TextAssembler', () => {
  it('never releases a broken UTF-8 character split across tokens', () => {
    const euro = bytes('€'); // 3 bytes
    const crab = bytes('🦀'); // 4 bytes
    const r = run(
      [bytes('a'), euro.slice(0, 1), euro.slice(1, 2), euro.slice(2), crab.slice(0, 2), crab.slice(2), bytes('b')],
      [],
    );
    expect(r.released).toEqual(['a', '', '', '€', '', '🦀', 'b']);
    expect(r.released.join('')).not.toContain('\uFFFD');
  });

  it('an incomplete character at the very end becomes U+FFFD', () => {
    const r = run([bytes('x'), bytes('€').slice(0, 2)], []);
    expect(r.final).toBe('\uFFFD');
  });

  it('cuts at a stop string inside one token', () => {
    const r = run([bytes('Hello. World')], ['.']);
    expect(r).toMatchObject({ released: ['Hello'], stopped: true });
  });

  it('holds back a possible stop-string start and releases it once ruled out', () => {
    const r = run([bytes('The '), bytes('en'), bytes('try')], ['The end']);
    expect(r.released).toEqual(['', '', 'The entry']);
    expect(r.stopped).toBe(false);
  });

  it('finds a stop string spanning tokens (and rounds) and releases nothing after it', () => {
    const r = run([bytes('She said "go'), bytes('od'), bytes(' ni'), bytes('ght" and left')], ['good night']);
    expect(r.stopped).toBe(true);
    expect(r.released.join('')).toBe('She said "');
  });

  it('picks the earliest of several stop strings', () => {
    const r = run([bytes('abc xyz def')], ['def', 'xyz']);
    expect(r.released.join('')).toBe('abc ');
  });

  it('a stop string made of a multi-byte character split across tokens', () => {
    const star = bytes('★');
    const r = run([bytes('one'), star.slice(0, 1), star.slice(1), bytes('two')], ['★']);
    expect(r.stopped).toBe(true);
    expect(r.released.join('')).toBe('one');
  });
});
