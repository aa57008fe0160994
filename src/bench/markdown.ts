/** One row of a Markdown table from its cells. */
export function markdownRow(cells: readonly (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}
