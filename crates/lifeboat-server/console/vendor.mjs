// Copies the chart library's dist files (and its licence) from node_modules
// into vendor/, where they are committed and embedded in `lifeboat`.
//   npm ci && npm run vendor
import fs from 'node:fs';

const files = [
  ['node_modules/uplot/dist/uPlot.iife.min.js', 'vendor/uplot/uPlot.iife.min.js'],
  ['node_modules/uplot/dist/uPlot.min.css', 'vendor/uplot/uPlot.min.css'],
  ['node_modules/uplot/LICENSE', 'vendor/uplot/LICENSE'],
];
const version = JSON.parse(fs.readFileSync('node_modules/uplot/package.json', 'utf8')).version;
fs.mkdirSync('vendor/uplot', { recursive: true });
for (const [from, to] of files) fs.copyFileSync(from, to);
fs.writeFileSync('vendor/uplot/VERSION', `${version}\n`);
console.log(`vendored uPlot ${version}`);
