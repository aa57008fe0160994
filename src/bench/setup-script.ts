import { spawn } from 'node:child_process';

/** How a setup script's progress reaches the person waiting for it. */
export interface SetupScriptOptions {
  /** Receives the script's own `dsd:` lines and a progress line at every tenth of a build. */
  log?: (line: string) => void;
  env?: NodeJS.ProcessEnv;
}

const BUILD_PERCENT = /^\[\s*(\d+)%\]/;
/** Ninja's progress (`[12/277] Building …`), which node-llama-cpp's build prints. */
const BUILD_STEPS = /\[(\d+)\/(\d+)\] (?:Building|Linking)/;

/** A build's progress in percent from one line of its output, when the line shows it. */
function buildPercent(line: string): number | undefined {
  const percent = BUILD_PERCENT.exec(line)?.[1];
  if (percent !== undefined) return Number(percent);
  const steps = BUILD_STEPS.exec(line);
  return steps === null ? undefined : (100 * Number(steps[1])) / Math.max(1, Number(steps[2]));
}

/**
 * Runs one of the project's setup scripts (a build or an install that prints its result on
 * stdout) and resolves with the last stdout line. The script talks to people on stderr with lines
 * that start with `dsd:`; those, and cmake's percentages rounded to tenths, go to `log`, because
 * a silent ten-minute step looks like a hang. Rejects with the last lines of stderr.
 */
export function runSetupScript(script: string, args: readonly string[], o: SetupScriptOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], { env: o.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let pending = '';
    const tail: string[] = [];
    let shownTenth = -1;
    const onLine = (line: string) => {
      tail.push(line);
      if (tail.length > 3) tail.shift();
      if (line.startsWith('dsd: ')) o.log?.(line);
      const percent = buildPercent(line);
      const tenth = percent === undefined ? -1 : Math.floor(percent / 10);
      if (tenth > shownTenth) {
        shownTenth = tenth;
        o.log?.(`dsd:   … ${tenth * 10} %`);
      }
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      const lines = (pending + d).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (pending !== '') onLine(pending);
      if (code === 0) resolve(stdout.trim().split('\n').pop() ?? '');
      else reject(new Error(tail.filter(Boolean).join(' | ') || `${script} exited with ${code}`));
    });
  });
}
