import type { Scenario } from './scenario.js';

/** A swept parameter: its name and values. */
export interface Sweep {
  param: SweepParam;
  values: number[];
}

/** Parameters `--sweep` understands. */
export type SweepParam =
  | 'rtt'
  | 'acceptance'
  | 'edges'
  | 'targets'
  | 'rate'
  | 'draft-ms'
  | 'node-draft-ms'
  | 'stages'
  | 'stage-link-ms'
  | 'users';

const PARAMS: readonly SweepParam[] = [
  'rtt',
  'acceptance',
  'edges',
  'targets',
  'rate',
  'draft-ms',
  'node-draft-ms',
  'stages',
  'stage-link-ms',
  'users',
];

/** Parses `name=from:to:step` (or `name=v1,v2,…`). */
export function parseSweep(spec: string): Sweep {
  const m = /^([a-z-]+)=(.+)$/.exec(spec);
  if (m === null) throw new Error(`--sweep ${JSON.stringify(spec)}: expected name=from:to:step or name=v1,v2`);
  const param = m[1] as SweepParam;
  if (!PARAMS.includes(param)) throw new Error(`--sweep: unknown parameter '${param}' (one of ${PARAMS.join(', ')})`);
  const body = m[2] as string;
  let values: number[];
  if (body.includes(':')) {
    const [from, to, step] = body.split(':').map(Number) as [number, number, number];
    if (![from, to, step].every(Number.isFinite) || step <= 0 || to < from)
      throw new Error(`--sweep ${JSON.stringify(spec)}: bad range`);
    values = [];
    for (let v = from; v <= to + 1e-9; v += step) values.push(Number(v.toPrecision(12)));
  } else {
    values = body.split(',').map(Number);
  }
  if (values.length === 0 || !values.every(Number.isFinite))
    throw new Error(`--sweep ${JSON.stringify(spec)}: no values`);
  return { param, values };
}

/** The scenario with one parameter set. */
export function applySweep(base: Scenario, param: SweepParam, value: number): Scenario {
  const s: Scenario = structuredClone(base);
  switch (param) {
    case 'rtt':
      s.link = { ...s.link, oneWayMs: value / 2 };
      s.edges = s.edges.map((e) => (e.link ? { ...e, link: { ...e.link, oneWayMs: value / 2 } } : e));
      break;
    case 'acceptance':
      s.acceptance = { kind: 'iid', rate: value };
      break;
    case 'edges':
      s.edges = [{ ...(s.edges[0] as Scenario['edges'][number]), count: value }];
      break;
    case 'targets':
      s.targets = { ...s.targets, count: value };
      break;
    case 'rate':
      if (s.workload.arrivals.kind === 'poisson') s.workload.arrivals = { ...s.workload.arrivals, ratePerS: value };
      break;
    case 'draft-ms':
      s.edges = s.edges.map((e) => ({ ...e, draftMsPerToken: value }));
      break;
    case 'node-draft-ms':
      s.strategies = s.strategies.map((st) => (st.kind === 'single-node' ? { ...st, draftMsPerToken: value } : st));
      break;
    case 'stages':
      s.targets = { ...s.targets, stages: { linkOneWayMs: s.targets.stages?.linkOneWayMs ?? 0, count: value } };
      break;
    case 'stage-link-ms':
      s.targets = { ...s.targets, stages: { count: s.targets.stages?.count ?? 1, linkOneWayMs: value } };
      break;
    case 'users':
      if (s.workload.arrivals.kind === 'closed-loop') s.workload.arrivals = { ...s.workload.arrivals, users: value };
      break;
  }
  s.name = `${base.name} [${param}=${value}]`;
  return s;
}
