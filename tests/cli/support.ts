import { rmSync } from 'node:fs';
import path from 'node:path';
import { buildProgram, type Io } from '../../cli/main';
import { embeddedTarget, type Target } from '../../cli/target';
import { seedDemo, type Demo } from '../../local/demo';
import { startAzurite, type AzuriteHandle } from '../../local/azurite';
import { useLocalAzure } from '../support/localAzure';

export interface Run {
  code: number;
  out: string;
  err: string;
}

/**
 * One local Azure with the demo tenant and an Azurite of its own per test file (the service's queue
 * and container names are fixed, and the e2e suite owns them in the shared Azurite). `run` calls the
 * CLI in-process, as `npx kv-rotator …` would, against that tenant.
 */
export function useCliDemo(options: { open?: (demo: Demo) => Promise<Target> } = {}) {
  const azure = useLocalAzure();
  let azurite: AzuriteHandle | undefined;
  let demo: Demo | undefined;
  const dataDir = path.resolve(__dirname, '..', '..', '.local', `azurite-cli-test-${process.pid}`);
  beforeAll(async () => {
    azurite = await startAzurite(dataDir, { fresh: true });
    demo = await seedDemo(azure(), { storage: azurite.connectionString });
  }, 60_000);
  afterAll(async () => {
    await azurite?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });
  const getDemo = () => {
    if (!demo) throw new Error('the demo is not seeded yet');
    return demo;
  };
  const run = async (...argv: string[]): Promise<Run> => {
    let out = '';
    let err = '';
    const io: Io = {
      out: (t) => (out += t),
      err: (t) => (err += t),
      progress: () => ({ step: () => undefined, done: () => undefined }),
      open: () =>
        options.open ? options.open(getDemo()) : Promise.resolve(embeddedTarget(azure(), getDemo().env)),
    };
    const code = await buildProgram(io).run(argv);
    return { code, out, err };
  };
  return { azure, demo: getDemo, run, storage: () => azurite!.connectionString };
}
