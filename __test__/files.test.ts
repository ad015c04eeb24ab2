/**
 * Every path the TypeScript opens: a file that cannot be read or written is a FileError
 * (GYRE_FILE) naming the path and the reason, with Node's error as its cause; a file that is read
 * but is not a model is a BadFileError whose message starts with the path.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BadFileError,
  Dataset,
  FileError,
  Forecaster,
  GyreError,
  loadModel,
  loadTfjs,
  saveOnnx,
  sequential,
  TextClassifier,
  TextGenerator,
} from 'gyre';

const dir = mkdtempSync(join(tmpdir(), 'gyre-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const missing = (name: string) => join(dir, 'no-such-dir', name);

async function fileError(call: () => Promise<unknown>, path: string, doing: string): Promise<void> {
  const err = await call().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(FileError);
  const e = err as FileError;
  expect(e).toBeInstanceOf(GyreError);
  expect(e.code).toBe('GYRE_FILE');
  expect(e.message).toContain(`cannot ${doing} ${JSON.stringify(path)}: no such file or directory (ENOENT)`);
  expect((e.cause as NodeJS.ErrnoException).code).toBe('ENOENT');
}

describe('a file that cannot be read or written', () => {
  const model = sequential({ input: { features: 1 }, layers: [{ type: 'lstm', hiddenSize: 2 }] });

  it('loadModel, TextGenerator.load, TextClassifier.load, Forecaster.load', async () => {
    const path = missing('m.safetensors');
    await fileError(() => loadModel(path), path, 'read model file');
    await fileError(() => TextGenerator.load(path), path, 'read model file');
    await fileError(() => TextClassifier.load(path), path, 'read model file');
    await fileError(() => Forecaster.load(path), path, 'read model file');
  });

  it('model.save and saveOnnx into a missing directory', async () => {
    const path = missing('m.safetensors');
    await fileError(() => model.save(path), path, 'write model file');
    const onnx = missing('m.onnx');
    await fileError(() => saveOnnx(model, onnx), onnx, 'write ONNX file');
  });

  it('loadTfjs: model.json, and a weight file it names', async () => {
    const path = missing('model.json');
    await fileError(() => loadTfjs(path), path, 'read tfjs model.json');
    const json = join(dir, 'model.json');
    writeFileSync(
      json,
      JSON.stringify({
        modelTopology: { class_name: 'Sequential', config: { layers: [] } },
        weightsManifest: [{ paths: ['shard.bin'], weights: [] }],
      }),
    );
    await fileError(() => loadTfjs(json), join(dir, 'shard.bin'), 'read tfjs weight file');
    await expect(loadTfjs(json)).rejects.toThrow(`, named by ${json}`);
  });

  it('Dataset.fromLines, fromJsonLines and fromCsv (read lazily: the error comes with the first item)', async () => {
    for (const [name, open] of [
      ['a.txt', (p: string) => Dataset.fromLines(p)],
      ['a.jsonl', (p: string) => Dataset.fromJsonLines(p)],
      ['a.csv', (p: string) => Dataset.fromCsv(p)],
    ] as const) {
      const path = missing(name);
      await fileError(() => open(path).toArray(), path, 'read');
    }
  });
});

describe('a file that is read but is not a model', () => {
  it('names the file in the BadFileError', async () => {
    const path = join(dir, 'notes.safetensors');
    writeFileSync(path, 'not a model');
    const err = await loadModel(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(BadFileError);
    expect((err as BadFileError).message.startsWith(`${path}: `)).toBe(true);
    await expect(Forecaster.load(path)).rejects.toThrow(`${path}: `);
  });
});
