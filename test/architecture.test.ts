import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

function filesUnder(dir: string, ext: RegExp): string[] {
  return readdirSync(resolve(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && ext.test(e.name))
    .map((e) => relative(root, join(e.parentPath, e.name)));
}

/** Every module specifier a source file imports (type-only imports included: a circle of types is still a circle). */
function importsOf(file: string): string[] {
  const text = readFileSync(resolve(root, file), 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2]) as string);
}

/** Reads `process.env` in code (a mention inside a string, as in a usage text, does not count). */
function readsEnv(file: string): boolean {
  return readFileSync(resolve(root, file), 'utf8')
    .split('\n')
    .some((line) => /process\.env\b/.test(line.replace(/(['"`]).*?\1/g, '')));
}

const sources = filesUnder('src', /\.ts$/);
const graph = new Map(
  sources.map((f) => [
    f,
    importsOf(f)
      .filter((s) => s.startsWith('.'))
      .map((s) => relative(root, resolve(root, dirname(f), s.replace(/\.js$/, '.ts')))),
  ]),
);

/** Strongly connected components with more than one module (Tarjan). */
function importCircles(): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const circles: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
    }
    if (low.get(v) !== indexOf.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1) circles.push(component.sort());
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return circles;
}

describe('architecture', () => {
  it('src/ has no import circle', () => {
    expect(importCircles()).toEqual([]);
  });

  it('speculative/ and sim/ stay pure: what they reach imports no Express, undici, ws, llama.cpp, process.env', () => {
    const banned = /^(express|undici|ws|node-llama-cpp|eventsource-parser|pino|prom-client)(\/|$)/;
    const reached = new Set(sources.filter((s) => /^src\/(speculative|sim)\//.test(s)));
    for (const f of reached) for (const s of graph.get(f) ?? []) reached.add(s);
    const offenders: string[] = [];
    for (const f of reached) {
      for (const s of importsOf(f)) if (banned.test(s)) offenders.push(`${f} imports ${s}`);
      if (readsEnv(f)) offenders.push(`${f} reads process.env`);
    }
    expect(offenders).toEqual([]);
  });

  it('speculative/ imports only speculative/', () => {
    const out = sources
      .filter((f) => f.startsWith('src/speculative/'))
      .flatMap((f) => (graph.get(f) ?? []).filter((s) => !s.startsWith('src/speculative/')).map((s) => `${f} → ${s}`));
    expect(out).toEqual([]);
  });

  it('only src/config reads process.env (and the CLI entry, which hands it over)', () => {
    expect(sources.filter(readsEnv).filter((f) => !/^src\/(config\/|cli\.ts$|bench\/)/.test(f))).toEqual([]);
  });

  it('the upstream pools depend on neither the HTTP surface nor the generation path', () => {
    const offenders = sources
      .filter((f) => f.startsWith('src/server/upstreams/'))
      .flatMap((f) => (graph.get(f) ?? []).filter((s) => /^src\/server\/(http|generation)\//.test(s)));
    expect(offenders).toEqual([]);
  });

  it('the edge never imports the target side: what both ends of the link speak lives in backends/', () => {
    const offenders = sources
      .filter((f) => /^src\/(backends|server|speculative|sim|cache)\//.test(f))
      .flatMap((f) => (graph.get(f) ?? []).filter((s) => s.startsWith('src/verifier/')).map((s) => `${f} → ${s}`));
    expect(offenders).toEqual([]);
  });

  it('no source line is wider than the formatter width (120)', () => {
    const files = ['src', 'test', 'bench', 'examples', 'scripts'].flatMap((d) => filesUnder(d, /\.(ts|sh|py)$/));
    const wide = files.flatMap((f) =>
      readFileSync(resolve(root, f), 'utf8')
        .split('\n')
        .flatMap((line, i) => ([...line].length > 120 ? [`${f}:${i + 1}`] : [])),
    );
    expect(wide).toEqual([]);
  });
});
