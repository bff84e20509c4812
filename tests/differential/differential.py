"""The differential test: the same generated programs on the default loop
and on asyncloop, each loop in its own subprocesses, and what they observed
compared.

    python tests/differential/differential.py --programs 2000 --seed 1
    python tests/differential/differential.py --show 17      # one program
    python tests/differential/differential.py --minimize 17  # its repro

A difference the allowlist (allowlist.py) explains in an operation is taken
out by running the program again with that operation replaced by None, so
what it causes further on does not hide a real difference. Prints each
remaining difference and a count by kind; exits 1 if there is any.
"""
import argparse
import collections
import concurrent.futures
import json
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import allowlist  # noqa: E402
import generator  # noqa: E402
from harness import UNORDERED  # noqa: E402

HARNESS = os.path.join(HERE, 'harness.py')
LOOPS = ('asyncio', 'asyncloop')
HANG = 30.0  # seconds for one program before it counts as a hang


def child_env():
    """The subprocesses import what this interpreter imports (the
    extension built in place, or a sanitizer build on the path)."""
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(HERE))
    env['PYTHONPATH'] = os.pathsep.join([p for p in sys.path if p] + [root])
    return env


def run_batch(kind, programs, python=sys.executable):
    """Runs programs ({'id', 'source', 'debug'}) on one loop; returns
    {id: streams}. A program that kills its process or hangs gets a
    'crash' stream and the batch goes on after it in a new process."""
    results = {}
    todo = list(programs)
    while todo:
        feed = ''.join(json.dumps(p) + '\n' for p in todo)
        try:
            proc = subprocess.run(
                [python, HARNESS, '--loop', kind, '--hang', str(HANG)],
                input=feed, capture_output=True, text=True, env=child_env(),
                timeout=HANG * len(todo) + 60)
            out, err, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out, err, rc = exc.stdout or '', exc.stderr or '', 'timeout'
            out = out.decode() if isinstance(out, bytes) else out
            err = err.decode() if isinstance(err, bytes) else err
        begun = None
        for line in out.splitlines():
            record = json.loads(line)
            if 'begin' in record:
                begun = record['begin']
            else:
                results[record['id']] = record['streams']
                begun = None
        done = [p for p in todo if p['id'] in results]
        if begun is None and len(done) == len(todo):
            break
        hang = 'Timeout' in err or rc == 'timeout'
        if begun is None:  # died between programs
            begun = todo[len(done)]['id']
        results[begun] = {'crash': [['hang' if hang else 'crash', rc,
                                     err[-1500:]]]}
        todo = [p for p in todo if p['id'] not in results]
    return results


def diff_streams(ref, new):
    """The differences between what the default loop (ref) and asyncloop
    (new) observed: a list of dicts with kind, stream, and the events."""
    found = []
    for stream in sorted(set(ref) | set(new)):
        a, b = ref.get(stream, []), new.get(stream, [])
        if stream == 'crash' or 'crash' in (set(ref) | set(new)):
            if stream == 'crash':
                found.append({'kind': b[0][0] if b else 'crash-asyncio',
                              'stream': stream, 'asyncio': a[:1],
                              'asyncloop': [e[:2] for e in b]})
            continue
        if stream == 'main':
            found += diff_ops(a, b)
        elif stream == 'warning':
            # Which warnings, not how many: finalizers that warn run when
            # the collector frees objects, which the loops do differently.
            sa, sb = set(map(json.dumps, a)), set(map(json.dumps, b))
            if sa != sb:
                found.append({'kind': stream, 'stream': stream,
                              'asyncio': sorted(sa - sb),
                              'asyncloop': sorted(sb - sa)})
        elif stream in UNORDERED:
            ca, cb = collections.Counter(map(json.dumps, a)), \
                collections.Counter(map(json.dumps, b))
            if ca != cb:
                found.append({'kind': stream, 'stream': stream,
                              'asyncio': sorted((ca - cb).elements()),
                              'asyncloop': sorted((cb - ca).elements())})
        elif a != b:
            kind = 'order' if sorted(map(json.dumps, a)) == sorted(
                map(json.dumps, b)) else 'events'
            found.append({'kind': kind, 'stream': stream,
                          'asyncio': a, 'asyncloop': b})
    return found


def diff_ops(a, b):
    found = []
    by_op = {e[0]: e for e in a}
    new_by_op = {e[0]: e for e in b}
    for n in sorted(set(by_op) | set(new_by_op)):
        x, y = by_op.get(n), new_by_op.get(n)
        if x == y:
            continue
        if x is None or y is None:
            kind = 'missing-op'
        elif x[1] == y[1] == 'exc':
            if x[2] != y[2]:
                kind = 'exception'
            elif stable_message(x[3]):
                kind = 'message'
            else:
                continue
        elif 'exc' in (x[1], y[1]):
            kind = 'exception'
        else:
            kind = 'result'
        found.append({'kind': kind, 'stream': 'main', 'op': n,
                      'asyncio': x, 'asyncloop': y})
    return found


def stable_message(message):
    """Whether asyncio's message is a fixed text, not one made of the
    arguments or of the implementation's wording of a type error."""
    return not re.search(r"[\d'\"(<]", message)


def op_line(source, n):
    match = re.search(rf'^\s*(V\[{n}\] = )?(await )?h\.a?op\({n}, lambda: '
                      rf'(.*)\)$', source, re.M)
    return match.group(3) if match else ''


def neutralize(source, ops):
    """The program with these operations replaced by None."""
    for n in ops:
        source = re.sub(rf'^(\s*)(V\[{n}\] = )?(await )?h\.a?op\({n}, .*$',
                        rf'\1V[{n}] = None', source, flags=re.M)
    return source


def check(programs, jobs=2, python=sys.executable):
    """Runs and compares programs; returns {id: (differences, allowed)}
    where allowed lists the allowlist entries that explained something."""
    outcome = {}
    pending = {p['id']: p for p in programs}
    allowed = collections.defaultdict(list)
    for _ in range(4):  # rounds of taking out allowed operations
        if not pending:
            break
        observed = run_both(list(pending.values()), jobs, python)
        again = {}
        for pid, program in pending.items():
            diffs = diff_streams(observed['asyncio'][pid],
                                 observed['asyncloop'][pid])
            remaining, out = [], []
            for d in diffs:
                line = op_line(program['source'], d['op']) if 'op' in d else ''
                entry = allowlist.explain(d, line, program['source'])
                if entry is None:
                    remaining.append(d)
                else:
                    allowed[pid].append(entry.name)
                    out += entry.ops_to_remove(d, program['source'])
            if out:
                again[pid] = dict(program, source=neutralize(
                    program['source'], out))
            else:
                outcome[pid] = (remaining, allowed[pid])
        pending = again
    for pid in pending:
        outcome[pid] = ([{'kind': 'allowlist-loop', 'stream': '-',
                          'asyncio': [], 'asyncloop': []}], allowed[pid])
    return outcome


def run_both(programs, jobs, python):
    """Both loops over the programs, in batches run side by side."""
    size = max(1, min(25, len(programs) // max(1, jobs) or 1))
    batches = [programs[i:i + size] for i in range(0, len(programs), size)]
    observed = {kind: {} for kind in LOOPS}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = {pool.submit(run_batch, kind, batch, python): kind
                   for batch in batches for kind in LOOPS}
        for fut in concurrent.futures.as_completed(futures):
            observed[futures[fut]].update(fut.result())
    return observed


def program_dict(seed):
    p = generator.generate(seed)
    return {'id': seed, 'source': p.source, 'debug': p.debug}


def signature(diffs):
    return {(d['kind'], d['stream'].split('.')[0]) for d in diffs}


def minimize(seed, python=sys.executable):
    """Takes out the operations whose absence keeps a difference of the
    same kind; returns the smallest program found and its differences."""
    program = program_dict(seed)
    diffs = check([program], 1, python)[seed][0]
    if not diffs:
        return program['source'], []
    goal = signature(diffs)
    ops = [int(n) for n in re.findall(r'h\.a?op\((\d+),', program['source'])]
    for n in reversed(ops):
        trial = dict(program, source=neutralize(program['source'], [n]))
        trial_diffs = check([trial], 1, python)[seed][0]
        if trial_diffs and goal & signature(trial_diffs):
            program, diffs = trial, trial_diffs
    source = re.sub(r'^\s*V\[\d+\] = None\n', '', program['source'],
                    flags=re.M)
    return source, diffs


def describe(pid, diffs):
    lines = [f'program {pid}:']
    for d in diffs:
        where = f" op {d['op']}" if 'op' in d else ''
        lines.append(f"  {d['kind']} in {d['stream']}{where}: "
                     f"asyncio {d['asyncio']} / asyncloop {d['asyncloop']}")
    return '\n'.join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--programs', type=int, default=500)
    parser.add_argument('--seed', type=int, default=1,
                        help='seed of the first program')
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--show', type=int, metavar='SEED')
    parser.add_argument('--minimize', type=int, metavar='SEED')
    parser.add_argument('--json', metavar='FILE',
                        help='also write every difference to FILE')
    args = parser.parse_args()
    if args.show is not None:
        print(generator.generate(args.show).source)
        return 0
    if args.minimize is not None:
        source, diffs = minimize(args.minimize)
        print(source)
        print(describe(args.minimize, diffs))
        return 1 if diffs else 0
    seeds = list(range(args.seed, args.seed + args.programs))
    outcome = {}
    for i in range(0, len(seeds), 100):  # reports as it goes
        chunk = check([program_dict(s) for s in seeds[i:i + 100]], args.jobs)
        for pid in sorted(chunk):
            if chunk[pid][0]:
                print(describe(pid, chunk[pid][0]), flush=True)
        outcome.update(chunk)
    kinds = collections.Counter()
    allowed = collections.Counter()
    failing = {}
    for pid in sorted(outcome):
        diffs, entries = outcome[pid]
        allowed.update(set(entries))
        if diffs:
            failing[pid] = diffs
            kinds.update({d['kind'] for d in diffs})
    print(f'\n{len(outcome)} programs, {len(failing)} with differences')
    for kind, count in kinds.most_common():
        print(f'  {kind}: {count} programs')
    for name, count in allowed.most_common():
        print(f'  allowed ({name}): {count} programs')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(failing, f, indent=1, default=repr)
    return 1 if failing else 0


if __name__ == '__main__':
    sys.exit(main())
