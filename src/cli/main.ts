#!/usr/bin/env node
import pino from 'pino';
import { startBankServer } from '../bank/bank-server.js';
import { DatabaseUnreachableError } from '../store/postgres/postgres-pool.js';
import {
  ClusterStartStopped,
  clusterSummary,
  NodeStartFailed,
  ownGroupVariable,
  runInOwnProcessGroup,
  startCluster,
} from './cluster-command.js';
import {
  ConfigError,
  parseBankConfig,
  parseClusterConfig,
  parseNodeConfig,
  parseStartConfig,
} from './config.js';
import { startGateway } from './gateway.js';
import { startClusterNode } from './node.js';
import { quickstartBanner } from './quickstart.js';

const usage = `Usage: remit <command> [flags]

Commands:
  start   run the gateway (and, unless --bank-url is given, a bank simulator beside it)
          --host 127.0.0.1 --port 8080 --data ./data --bank-url URL --bank-port 8081 --log-level info
          --access-log-level info (one line per request answered; silent for none)
          --execution-deadline-ms 60000 (give up on the bank after this, proving nothing was charged)
          --bank-timeout-ms 10000 (a bank call without an answer by then has an unknown outcome)
          --database-url postgresql://user:password@host:5432/db (every store in PostgreSQL; also
            DATABASE_URL; without it, SQLite files in the data folder)
          --database-schema remit --database-pool-size 10 --database-statement-timeout-ms 10000
          --database-idle-in-transaction-timeout-ms 10000
          --webhooks-allow-insecure (webhook URLs may be http and on private addresses: development
            and tests only; also REMIT_WEBHOOKS_ALLOW_INSECURE=true)
  node    run one node of a cluster (PostgreSQL shared by every node; REMIT_VAULT_KEY required, the
          same on every node; the cluster secret is derived from it)
          --database-url URL --node-id ID --port 8080 --cluster-port 7070 --roles bank-a,bank-b
          --bank-url URL --data ./data --host 127.0.0.1 (and the other flags of start but --bank-port)
          --heartbeat-interval-ms 1000 --member-timeout-ms 5000 --lease-ttl-ms 4000
          --lease-renew-interval-ms 1000 --shard-count 128 --rebalance-shards-max 8 (the same on
            every node; failover after a crash takes about the lease TTL plus a heartbeat)
  cluster run PostgreSQL, the bank simulator and N nodes on this machine (every bank served by two)
          --nodes 3 --data ./cluster-data --port 8080 (nodes on consecutive ports; 0: free ones)
          --host 127.0.0.1 --bank-port 0 (a free port) --log-level info
  bank    run the acquiring-bank simulator alone
          --host 127.0.0.1 --port 8081 --data ./bank-data --log-level info

Every flag has a REMIT_* environment equivalent (REMIT_PORT, REMIT_DATA, REMIT_BANK_URL, ...).
REMIT_VAULT_KEY: the card vault key, 32 bytes in base64 (development: generated into the data folder).`;

/** Runs until SIGTERM or SIGINT, then stops gracefully: requests in flight finish, stores close. */
async function main(argv: readonly string[]): Promise<number> {
  const [command, ...args] = argv;
  try {
    switch (command) {
      case 'start': {
        const config = parseStartConfig(args, process.env);
        const gateway = await startGateway(config);
        // The example holds a test card number: it is for a person at a terminal, and standard
        // output that is not a terminal is a log (a file, a collector), which never holds one.
        if (process.stdout.isTTY) process.stdout.write(`${quickstartBanner(gateway.url, gateway.dataDir)}\n`);
        await untilStopSignal();
        await gateway.close();
        return 0;
      }
      case 'node': {
        const config = parseNodeConfig(args, process.env);
        const node = await startClusterNode(config);
        await untilStopSignal();
        await node.close();
        return 0;
      }
      case 'cluster': {
        const config = parseClusterConfig(args, process.env);
        if (process.env[ownGroupVariable] === undefined) return await runInOwnProcessGroup(args);
        // Listening from the start: a stop during the start stops what has started.
        const stopRequested = new AbortController();
        const stopped = untilStopSignal().then(() => stopRequested.abort());
        try {
          const cluster = await startCluster(config, stopRequested.signal);
          process.stdout.write(`${clusterSummary(cluster)}\n`);
          await stopped;
          await cluster.close();
        } catch (error) {
          if (error instanceof NodeStartFailed) {
            process.stderr.write(`remit: ${error.message}\n`);
            return 1;
          }
          if (!(error instanceof ClusterStartStopped)) throw error;
          process.stderr.write('remit: stopped before the cluster was ready\n');
        }
        return 0;
      }
      case 'bank': {
        const config = parseBankConfig(args, process.env);
        const logger = pino({ level: config.logLevel, base: { service: 'remit-bank' } });
        const bank = await startBankServer({
          host: config.host,
          port: config.port,
          dataDir: config.data,
          logger,
        });
        logger.info({ url: bank.url }, 'bank simulator ready');
        await untilStopSignal();
        await bank.close();
        logger.info({}, 'bank simulator stopped');
        return 0;
      }
      case undefined:
      case '--help':
      case 'help':
        process.stdout.write(`${usage}\n`);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`remit: unknown command "${command}"\n\n${usage}\n`);
        return 2;
    }
  } catch (error) {
    // A database that cannot be reached at start is the operator's to fix: a sentence, not a trace.
    if (error instanceof ConfigError || error instanceof DatabaseUnreachableError) {
      process.stderr.write(`remit: ${error.message}\n`);
      return 2;
    }
    process.stderr.write(
      `remit: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    return 1;
  }
}

/**
 * Resolves at the first SIGTERM or SIGINT. The handlers stay: a repeated signal during the graceful
 * stop is ignored rather than ending the process half-way (npm forwards to its child the SIGINT
 * the terminal already sent to the whole process group, so Ctrl-C under `npm start` arrives twice).
 */
function untilStopSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = (): void => resolve();
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(`remit: ${String(error)}\n`);
    process.exit(1);
  },
);
