// Runs the README's @streamerbot/client example as written (only the port changes to the test
// server's) and passes on what it prints; exits after its first line.
// Usage: node readme_example.mjs <ws-url>
import { readFile, rm, writeFile } from 'node:fs/promises';

const [wsUrl] = process.argv.slice(2);
const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
const code = readme
  .match(/```js\r?\n(import \{ StreamerbotClient \}[\s\S]*?)```/)[1]
  .replace('port: 8080', `port: ${new URL(wsUrl).port}`);
const print = console.log;
console.log = (...args) => {
  print(...args);
  process.exit(0);
};
setTimeout(() => {
  console.error('the example printed nothing within 10 s');
  process.exit(1);
}, 10_000);
// Written beside this script so that its import of '@streamerbot/client' resolves here.
const file = new URL(`./.readme-example-${process.pid}.mjs`, import.meta.url);
await writeFile(file, code);
try {
  await import(file.href);
} finally {
  await rm(file);
}
