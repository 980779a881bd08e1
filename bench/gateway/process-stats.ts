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
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    if (!Number.isFinite(utime) || !Number.isFinite(stime)) return undefined;
    return {
      cpuSeconds: (utime + stime) / ticksPerSecond,
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
