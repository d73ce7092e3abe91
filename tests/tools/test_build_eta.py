"""tools/lib/build_eta.sh: setup's progress and time-left lines for the mmcv build."""
import re
import subprocess
import sys
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

FAKE_BUILD = '''
import sys, time
with open(sys.argv[1], 'a') as log:
    print('Building wheel for onedl-mmcv', file=log, flush=True)
    for done in range(1, 5):
        time.sleep(0.6)
        print(f'  [{done}/8] c++ -MMD -c unit{done}.cpp -o unit{done}.o', file=log, flush=True)
'''


def test_progress_lines_count_units_and_estimate_the_rest(tmp_path):
    log = tmp_path / 'build.log'
    log.touch()
    build = subprocess.Popen([sys.executable, '-c', FAKE_BUILD, str(log)])
    reaper = threading.Thread(target=build.wait)  # as bash reaps its own background job
    reaper.start()
    out = subprocess.run(['bash', '-c', f'source {REPO}/tools/lib/build_eta.sh; '
                          f'watch_build {build.pid} {log} 0.25'],
                         capture_output=True, text=True, timeout=60)
    reaper.join()
    lines = out.stdout.splitlines()
    found = [tuple(map(int, re.search(r'(\d+)/(\d+) units compiled in (\d+) min (\d+) s; about '
                                      r'(\d+) min (\d+) s left', line).groups()))
             for line in lines]
    assert found and len(found) == len(lines), out.stdout + out.stderr
    done = [f[0] for f in found]
    assert done == sorted(set(done)) and done[-1] == 4 and all(f[1] == 8 for f in found)
    last = found[-1]
    elapsed, left = 60 * last[2] + last[3], 60 * last[4] + last[5]
    assert left == elapsed * (8 - 4) // 4  # the rate so far, for the 4 units not yet done
