import { execFileSync } from 'node:child_process';

/** A network namespace joined to this one by a veth pair, each end's egress capped by `tc tbf`. */
export interface LinkNamespace {
  name: string;
  /** This namespace's address on the pair. */
  hostIp: string;
  /** The other namespace's address: what runs there listens on it. */
  nsIp: string;
  /** tc's own counters of both ends (bytes sent, packets dropped, overlimits) as text. */
  stats(): string;
  /** Removes the namespace (and with it the pair and both qdiscs). */
  remove(): void;
}

const run = (args: readonly string[]) => execFileSync(args[0] as string, args.slice(1), { stdio: 'pipe' });

/**
 * Makes a namespace and a veth pair to it with a bandwidth cap (`tc tbf`) on both ends, or says why
 * it cannot (not root, no `ip`/`tc`, no netns support). Names carry the process id, so parallel
 * test files and a crashed earlier run do not collide; a leftover of the same name is removed first.
 */
export function makeLinkNamespace(o: {
  rateKbit: number;
  burstBytes: number;
  latencyMs: number;
}): LinkNamespace | { skip: string } {
  if (process.getuid?.() !== 0) return { skip: 'network namespaces need root' };
  const id = process.pid % 100_000;
  const name = `dsd-link-${id}`;
  const [hostIf, nsIf] = [`dsdh${id}`, `dsdn${id}`];
  const octet = 1 + (id % 250);
  const [hostIp, nsIp] = [`10.213.${octet}.1`, `10.213.${octet}.2`];
  const inNs = (...args: string[]) => run(['ip', 'netns', 'exec', name, ...args]);
  const tbf = [
    'root',
    'tbf',
    'rate',
    `${o.rateKbit}kbit`,
    'burst',
    String(o.burstBytes),
    'latency',
    `${o.latencyMs}ms`,
  ];
  const remove = () => {
    try {
      run(['ip', 'netns', 'del', name]);
    } catch {
      // Not there: nothing to remove.
    }
  };
  remove();
  try {
    run(['ip', 'netns', 'add', name]);
    run(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    run(['ip', 'link', 'set', nsIf, 'netns', name]);
    run(['ip', 'addr', 'add', `${hostIp}/30`, 'dev', hostIf]);
    run(['ip', 'link', 'set', hostIf, 'up']);
    inNs('ip', 'addr', 'add', `${nsIp}/30`, 'dev', nsIf);
    inNs('ip', 'link', 'set', nsIf, 'up');
    inNs('ip', 'link', 'set', 'lo', 'up');
    run(['tc', 'qdisc', 'add', 'dev', hostIf, ...tbf]);
    inNs('tc', 'qdisc', 'add', 'dev', nsIf, ...tbf);
  } catch (err) {
    remove();
    const why = (err as { stderr?: Buffer }).stderr?.toString().trim() || (err as Error).message;
    return { skip: `cannot make a network namespace with a capped veth pair: ${why}` };
  }
  return {
    name,
    hostIp,
    nsIp,
    stats: () => {
      const show = ['tc', '-s', 'qdisc', 'show', 'dev'];
      return `${run([...show, hostIf]).toString()}${inNs(...show, nsIf).toString()}`;
    },
    remove,
  };
}
