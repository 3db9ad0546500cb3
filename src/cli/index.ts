// ovr-train command-line entry: `ovr-train <command> [flags]`.
export async function main(argv: string[]): Promise<number> {
  console.log(`ovr-train: commands are not wired yet (${argv.join(' ')})`);
  return 0;
}
