/**
 * CPU time and memory of one process, read from Linux's /proc: `stat` for user + system CPU time
 * (in clock ticks, summed over all its threads) and `status` for resident memory now (VmRSS) and
 * at its peak (VmHWM, the high-water mark since the process started).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface ProcessSample {
  readonly cpuSeconds: number;
  readonly rssMb: number;
  readonly peakRssMb: number;
}

/** What /proc/<pid>/stat uses when `getconf CLK_TCK` cannot be asked (the Linux default). */
const defaultClockTicksPerSecond = 100;

/** `getconf CLK_TCK`: the unit of utime and stime in /proc/<pid>/stat. */
export function clockTicksPerSecond(): number {
  try {
    const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim());
    return Number.isSafeInteger(ticks) && ticks > 0 ? ticks : defaultClockTicksPerSecond;
  } catch {
    return defaultClockTicksPerSecond;
  }
}

/** The process's CPU time and memory, or undefined once it has gone (or off Linux). */
export function sampleProcess(pid: number, ticksPerSecond: number): ProcessSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    // Field 2, the command name, is in parentheses and may hold spaces: count fields after the last ')'.
    // After it come field 3 (state) onwards, so utime (field 14) and stime (field 15) are at 11 and 12.
    const cpuTicks = cpuTicksOf(stat);
    if (cpuTicks === undefined) return undefined;
    return {
      cpuSeconds: cpuTicks / ticksPerSecond,
      rssMb: kilobytesField(status, 'VmRSS') / 1024,
      peakRssMb: kilobytesField(status, 'VmHWM') / 1024,
    };
  } catch {
    return undefined;
  }
}

function kilobytesField(status: string, name: string): number {
  const match = status.match(new RegExp(`^${name}:\\s+(\\d+) kB$`, 'm'));
  return match?.[1] === undefined ? Number.NaN : Number(match[1]);
}

/**
 * CPU seconds (user + system) of one thread of a process (/proc/<pid>/task/<tid>/stat; the main
 * thread's id is the pid), or undefined once it has gone. A Node server answers HTTP on its main
 * thread, so that thread's share says how close it is to the one-core limit of a single process,
 * whatever its other threads (garbage collector, writer thread) add.
 */
export function threadCpuSeconds(pid: number, tid: number, ticksPerSecond: number): number | undefined {
  try {
    const ticks = cpuTicksOf(readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8'));
    return ticks === undefined ? undefined : ticks / ticksPerSecond;
  } catch {
    return undefined;
  }
}

/** utime + stime, in clock ticks, of a /proc `stat` line (of a process or of a thread). */
function cpuTicksOf(stat: string): number | undefined {
  // Field 2, the command name, is in parentheses and may hold spaces: count fields after the last ')'.
  // After it come field 3 (state) onwards, so utime (field 14) and stime (field 15) are at 11 and 12.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const utime = Number(fields[11]);
  const stime = Number(fields[12]);
  return Number.isFinite(utime) && Number.isFinite(stime) ? utime + stime : undefined;
}
