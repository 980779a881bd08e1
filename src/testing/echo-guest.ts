// A guest module for tests of guest hosts (`runtime/thread-guest.ts`): answers `ping` with the
// thread it runs in, ends on `end`, fails on `fail`.
import { type MessagePort, threadId } from 'node:worker_threads';

export function serveGuest(port: MessagePort, settings: unknown): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    port.on('message', (message: unknown) => {
      if (message === 'ping') port.postMessage({ pong: settings, threadId });
      else if (message === 'end') {
        port.postMessage('ending');
        resolve();
      } else if (message === 'fail') reject(new Error('asked to fail'));
    });
  });
}
