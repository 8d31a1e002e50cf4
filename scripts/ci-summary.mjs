// Prints the closing line CI reads, `N passed, N failed`, from vitest's JSON report
// (vitest's own summary is not a format CI reads). Exits non-zero when anything failed or
// when the report is missing (the run crashed).
import { readFileSync } from "node:fs";

const file = process.argv[2];
let report;
try {
  report = JSON.parse(readFileSync(file, "utf8"));
} catch (e) {
  console.log(`no test report at ${file}: ${e.message}`);
  console.log("0 passed, 1 failed");
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
// Failed tests, and test files that failed without a failed test (one that did not load or run).
// Not numFailedTestSuites: vitest counts describe blocks there too, so a failed test in a
// describe block was counted twice.
const failed = (report.numFailedTests ?? 0) + filesFailedWithoutFailedTest(report);
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
for (const suite of report.testResults ?? []) {
  for (const t of suite.assertionResults ?? []) if (t.status === "failed") console.log(`FAILED ${suite.name}: ${t.fullName}`);
  if (suite.status === "failed" && (suite.assertionResults ?? []).every((t) => t.status !== "failed")) {
    console.log(`FAILED ${suite.name}: ${(suite.message ?? "suite failed to run").split("\n")[0]}`);
  }
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);

function filesFailedWithoutFailedTest(r) {
  return (r.testResults ?? []).filter((s) => s.status === "failed" && (s.assertionResults ?? []).every((t) => t.status !== "failed")).length;
}
