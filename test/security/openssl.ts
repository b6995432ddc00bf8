// Whether the openssl command is here: tests that generate certificates skip without it.
import { execFileSync } from 'node:child_process';

export const hasOpenssl = (() => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();
