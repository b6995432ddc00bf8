import type { LogOptions } from './log.js';
import { loadNative } from './native.js';
export class PmemLog {
  static async open(_dir: string, _options: LogOptions = {}): Promise<never> {
    loadNative();
    throw new Error('not yet');
  }
}
