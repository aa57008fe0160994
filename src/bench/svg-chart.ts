/** One line of a chart. */
export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

/** A line chart. */
export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** Draw steps (for distributions) instead of straight segments. */
  steps?: boolean;
}

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const W = 640;
const H = 400;
const M = { left: 64, right: 160, top: 40, bottom: 52 };

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

function ticks(lo: number, hi: number): number[] {
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / 5));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => span / s <= 6) ?? step * 10;
  const out: number[] = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + 1e-9; v += nice) out.push(Number(v.toPrecision(12)));
  return out;
}

/**
 * Renders a small, dependency-free SVG line chart: axes with ticks, one polyline per series (a
 * `<g class="series" data-name=…>` each, so tests and readers can find them) and a legend.
 */
export function renderLineChart(c: LineChart): string {
  const all = c.series.flatMap((s) => s.points);
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs, 0), Math.max(...xs, 1)];
  const [y0, y1] = [0, Math.max(...ys, 1) * 1.05];
  const px = (x: number) => M.left + ((x - x0) / (x1 - x0 || 1)) * (W - M.left - M.right);
  const py = (y: number) => H - M.bottom - ((y - y0) / (y1 - y0 || 1)) * (H - M.top - M.bottom);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(c.title)}</text>`,
    `<line x1="${M.left}" y1="${H - M.bottom}" x2="${W - M.right}" y2="${H - M.bottom}" stroke="black"/>`,
    `<line x1="${M.left}" y1="${M.top}" x2="${M.left}" y2="${H - M.bottom}" stroke="black"/>`,
    `<text x="${(M.left + W - M.right) / 2}" y="${H - 12}" text-anchor="middle">${esc(c.xLabel)}</text>`,
    `<text x="16" y="${(M.top + H - M.bottom) / 2}" text-anchor="middle" transform="rotate(-90 16 ` +
      `${(M.top + H - M.bottom) / 2})">${esc(c.yLabel)}</text>`,
  ];
  for (const t of ticks(x0, x1))
    parts.push(`<text x="${px(t)}" y="${H - M.bottom + 16}" text-anchor="middle">${t}</text>`);
  for (const t of ticks(y0, y1))
    parts.push(
      `<text x="${M.left - 6}" y="${py(t) + 4}" text-anchor="end">${t}</text><line x1="${M.left}" ` +
        `y1="${py(t)}" x2="${W - M.right}" y2="${py(t)}" stroke="#eee"/>`,
    );
  c.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] as string;
    const pts: string[] = [];
    s.points.forEach(([x, y], j) => {
      if (c.steps && j > 0)
        pts.push(`${px(x).toFixed(1)},${py((s.points[j - 1] as readonly [number, number])[1]).toFixed(1)}`);
      pts.push(`${px(x).toFixed(1)},${py(y).toFixed(1)}`);
    });
    parts.push(
      `<g class="series" data-name="${esc(s.name)}"><polyline fill="none" stroke="${color}" stroke-width="2" ` +
        `points="${pts.join(' ')}"/></g>`,
    );
    parts.push(
      `<rect x="${W - M.right + 12}" y="${M.top + i * 20}" width="12" height="12" fill="${color}"/><text ` +
        `x="${W - M.right + 30}" y="${M.top + i * 20 + 10}">${esc(s.name)}</text>`,
    );
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** The empirical CDF of values, as chart points (x = value, y = fraction ≤ x). */
export function cdfPoints(values: readonly number[]): [number, number][] {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.map((v, i) => [v, (i + 1) / sorted.length]);
}
