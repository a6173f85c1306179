// The demo pod's sidecar config is examples/legacy-orders/pillion.yaml: the pod carries it as the
// orders-sidecar ConfigMap (as a cluster would), and this writes the file's text into it.

const HEADER = '  pillion.yaml: |';

/** pod.yaml's text with the orders-sidecar ConfigMap's pillion.yaml replaced by `config`. */
export function withSidecarConfig(podText, config) {
  const lines = podText.split('\n');
  const cm = lines.findIndex((l, i) => l === '  name: orders-sidecar' && lines[i - 1] === 'metadata:');
  const start = lines.findIndex((l, i) => i > cm && l === HEADER);
  if (cm < 0 || start < 0) throw new Error(`pod.yaml: no "${HEADER}" in the orders-sidecar ConfigMap`);
  let end = start + 1;
  while (end < lines.length && (lines[end] === '' || lines[end].startsWith('    '))) end++;
  // Blank lines at the end belong to the layout between documents, not to the block.
  while (end > start + 1 && lines[end - 1] === '') end--;
  const block = config
    .replace(/\n$/, '')
    .split('\n')
    .map((l) => (l === '' ? '' : `    ${l}`));
  return [...lines.slice(0, start + 1), ...block, ...lines.slice(end)].join('\n');
}
