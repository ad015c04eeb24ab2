/**
 * Reading and writing files for the API modules: a failure is a {@link FileError} naming the
 * path, what gyre was doing and the system's reason (`cannot read model file "m.safetensors":
 * no such file or directory (ENOENT)`), never Node's bare `ENOENT`; and errors about a file's
 * content are prefixed with its path.
 */
import { open, readFile, rename, rm } from 'node:fs/promises';
import { FileError, GyreError } from '../errors.js';

const REASONS: Record<string, string> = {
  ENOENT: 'no such file or directory',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EISDIR: 'it is a directory',
  ENOTDIR: 'a parent is not a directory',
  EROFS: 'read-only file system',
  ENOSPC: 'no space left on the device',
  EMFILE: 'too many open files',
};

/** @internal Whether `err` is an error of a file system call (it has a `syscall` and a string `code`). */
export function isSystemError(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string' && 'syscall' in err;
}

/**
 * @internal A {@link FileError} for a failed file system call on `path`; `doing` says what gyre
 * was doing (`read model file`, `write`). Other errors pass through unchanged.
 */
export function fileError(err: unknown, doing: string, path: string): unknown {
  if (!isSystemError(err) || err instanceof GyreError) return err;
  const code = err.code as string;
  return new FileError(`cannot ${doing} ${JSON.stringify(path)}: ${REASONS[code] ?? err.message} (${code})`, { cause: err });
}

/** @internal The bytes of `path`; a failure is a {@link FileError} (`doing`: e.g. `read model file`). */
export async function readBytes(path: string, doing = 'read'): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw fileError(err, doing, path);
  }
}

/** @internal `fn()`, with the path put in front of the message of any {@link GyreError} it throws (a malformed file's). */
export function about<T>(path: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof GyreError && !err.message.startsWith(`${path}:`)) err.message = `${path}: ${err.message}`;
    throw err;
  }
}

/** @internal The items of `source`, a stream reading `path`; a file system failure becomes a {@link FileError}. */
export async function* readingFile<T>(source: AsyncIterable<T>, path: string): AsyncGenerator<T> {
  try {
    yield* source;
  } catch (err) {
    throw fileError(err, 'read', path);
  }
}

/**
 * @internal Writes `bytes` to `path` so that an interrupted write never destroys the file that
 * was there: a temporary file in the same folder, flushed to disk, then renamed over `path`. A
 * failure is a {@link FileError} (`doing`: e.g. `write model file`) and leaves no temporary file.
 */
export async function writeAtomically(path: string, bytes: Uint8Array, doing = 'write'): Promise<void> {
  const tmp = `${path}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2, 8)}.tmp`;
  try {
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw fileError(err, doing, path);
  }
}
