// The persistent-memory log backend: the file log's format, recovery rules and interface, with a
// memory-mapped write path (see file-log.ts). Needs the native addon (native/pmem); where it did not
// build, open() throws SYNOD_STORAGE_UNAVAILABLE naming why.
import { FileLog, type FileLogOptions } from './file-log.js';

export class PmemLog extends FileLog {
  static override async open(dir: string, options: FileLogOptions = {}): Promise<FileLog> {
    return FileLog.openBackend(dir, options, 'pmem');
  }
}
