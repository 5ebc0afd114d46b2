// CPU time and memory of processes (and process trees) from /proc (Linux only).
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

const ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

function stat(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses; the fields after the last ')' do not.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): ppid = 4, utime = 14, stime = 15, cutime = 16, cstime = 17.
    return {
      ppid: Number(fields[1]),
      cpu: (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]))
        / ticksPerSecond,
    };
  } catch {
    return null;
  }
}

/** `pid` and all its descendants that are alive now. */
export function processTree(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const s = stat(name);
    if (!s) continue;
    if (!children.has(s.ppid)) children.set(s.ppid, []);
    children.get(s.ppid).push(Number(name));
  }
  const out = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop();
    out.push(p);
    todo.push(...(children.get(p) ?? []));
  }
  return out;
}

/** Direct children of `pid` whose command name contains `name`. */
export function childrenNamed(pid, name) {
  return processTree(pid).filter((p) => {
    if (p === pid || stat(p)?.ppid !== pid) return false;
    try {
      return readFileSync(`/proc/${p}/comm`, 'utf8').includes(name);
    } catch {
      return false;
    }
  });
}

/**
 * CPU seconds (user + system, including reaped children) of a process, or of its whole tree.
 * Children that exited and were reaped count through their parent's cutime/cstime.
 */
export function cpuSeconds(pid, { tree = false } = {}) {
  const pids = tree ? processTree(pid) : [pid];
  return pids.reduce((sum, p) => sum + (stat(p)?.cpu ?? 0), 0);
}

function statusField(pid, field) {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident set size in bytes, and its peak (VmHWM) since the process started. */
export function rss(pid) {
  return { rss: statusField(pid, 'VmRSS'), peak: statusField(pid, 'VmHWM') };
}

/**
 * Proportional set size of a process tree in bytes: shared pages split between the processes
 * that map them, so a multi-process browser is not counted several times over.
 */
export function treePss(pid) {
  return processTree(pid).reduce((sum, p) => sum + pss(p), 0);
}

/** The PSS of process `pid` alone in bytes (0 once it is gone). */
export function pss(pid) {
  try {
    const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // gone meanwhile
  }
}

/** CPU seconds of several named processes between `start()` and `stop()`. */
export function cpuMeter(procs) {
  const read = () => Object.fromEntries(Object.entries(procs)
    .filter(([, p]) => p?.pid)
    .map(([name, p]) => [name, cpuSeconds(p.pid, { tree: Boolean(p.tree) })]));
  const before = read();
  return {
    stop() {
      const after = read();
      return Object.fromEntries(Object.keys(after).map((k) => [k, after[k] - before[k]]));
    },
  };
}
