"""Trim onedl-mmcv's unpacked source so that its build compiles only the ops this project calls.

    python trim_mmcv.py key [--ops FILE]          the build's cache key: trim-<hash of the list and
                                                  of this script>
    python trim_mmcv.py trim SRC_DIR [--ops FILE] trim SRC_DIR (an unpacked onedl-mmcv source) in place

The ops are the names of tools/lib/mmcv_ops.txt (functions of ``mmcv._ext``, made by
tools/misc/record_mmcv_ops.py). ``trim`` keeps the compilation units those functions need, found by
following the code, not by file names:
  - the unit under mmcv/ops/csrc/pytorch/ that defines each listed function (pybind.cpp declares
    them all), and info.cpp (the build's compiler and CUDA versions);
  - the units registering a device implementation (REGISTER_DEVICE_IMPL) for a key a kept unit
    dispatches to: cpu/*.cpp, and the matching sections of cuda/cudabind.cpp (rewritten with only
    those sections);
  - any unit defining a function a kept unit calls (the CUDA kernel launchers in cuda/*.cu, helpers),
    until nothing new is needed.
Every other unit is deleted. pybind.cpp keeps the bindings of the functions kept units define; every
other name it binds is bound instead to one generic function that raises NotImplementedError naming
the op, so ``import mmcv.ops`` (whose ext_loader asserts every name) works as before, and pybind11
instantiates no wrapper for the ops left out. The module also gets ``_mmdet_dinov2_trim`` (the key)
and ``_mmdet_dinov2_stubbed`` (the names bound to the error).
The kept C++ units (all but pybind.cpp and CUDA's) are compiled as one: they move to
pytorch/trimmed/, out of reach of setup.py's globs, and pytorch/trimmed_ops.cpp includes them. Each
unit spends most of its time parsing torch's headers, so one unit parses them once (measured: 16 s of
compiler time for seven units, against 88 s apart). Units that define a function of the same name stay
apart. pybind.cpp includes <torch/python.h> (the Python bindings it uses) instead of
<torch/extension.h>, which adds all of torch's C++ frontend: 18 s of compiler time instead of 40 s.
The same trimmed source builds CPU ops and CUDA ops. Standard library only: it runs on an offline GPU
node with nothing installed.
"""
import argparse
import hashlib
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_OPS = HERE / 'mmcv_ops.txt'
CSRC = Path('mmcv') / 'ops' / 'csrc' / 'pytorch'
TRIM_MARK = 'mmdet_dinov2_describe_trim'  # in a trimmed pybind.cpp
ALWAYS = ('info.cpp',)  # mmcv and mmengine report the build's versions with it
UNITED = 'trimmed'  # the folder under CSRC of the C++ units compiled as one
UNITY = 'trimmed_ops.cpp'  # the unit that includes them
IDENT = re.compile(r'[A-Za-z_]\w*')
MESSAGE = ("mmcv op '{op}' is not compiled in mmdet-dinov2's trimmed onedl-mmcv build "
           '(tools/lib/mmcv_ops.txt lists the ops it compiles): add it to that list and run '
           '`make setup` again, or build every op with `MMCV_FULL_BUILD=1 make setup`')


class TrimError(RuntimeError):
    pass


def read_ops(path):
    ops = []
    for line in Path(path).read_text().splitlines():
        name = line.split('#', 1)[0].strip()
        if name:
            ops.append(name)
    if not ops:
        raise TrimError(f'{path} lists no op')
    return ops


def key(ops_path):
    """The cache key of a trimmed build: what it keeps (the list) and how (this script)."""
    h = hashlib.sha256()
    h.update(' '.join(sorted(read_ops(ops_path))).encode())
    h.update(Path(__file__).read_bytes())
    return 'trim-' + h.hexdigest()[:12]


def strip_code(text):
    """Comments, string and character literals and preprocessor lines blanked (lengths kept)."""
    pattern = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|^[ \t]*#[^\n]*',
                         re.S | re.M)
    return pattern.sub(lambda m: re.sub(r'[^\n]', ' ', m.group()), text)


def top_level_statements(code):
    """(text, is_definition) of each statement at namespace level: a definition ends with a body
    {...}, a declaration with ';'. Namespace and extern "C" blocks are looked into."""
    out, start, depth, i = [], 0, 0, 0
    while i < len(code):
        c = code[i]
        if c == ';' and depth == 0:
            out.append((code[start:i], False))
            start = i + 1
        elif c == '{':
            head = code[start:i]
            if depth == 0 and re.match(r'\s*(namespace\b[\w:\s]*|extern\s*)$', head):
                start = i + 1  # transparent
            else:
                if depth == 0:
                    body_start = i
                depth += 1
        elif c == '}':
            if depth == 0:
                start = i + 1  # the end of a namespace
            else:
                depth -= 1
                if depth == 0:
                    out.append((code[start:body_start], True))
                    start = i + 1
        i += 1
    return out


FUNC = re.compile(r'(~?[A-Za-z_]\w*)\s*(?:<[^<>()]*>)?\s*\(([^()]|\([^()]*\))*\)\s*'
                  r'(?:const|noexcept|override|\s)*(?:->[^;{]*)?$', re.S)


def function_name(head):
    """The name of the function a statement head declares or defines, or None."""
    head = head.strip()
    if not head or re.match(r'(typedef|using|struct|class|enum|union|static_assert|template\s*<[^>]*>\s*'
                            r'(struct|class))\b', head):
        return None
    m = FUNC.search(head)
    if not m or m.group(1) in ('REGISTER_DEVICE_IMPL', 'PYBIND11_MODULE', 'TORCH_LIBRARY'):
        return None
    return m.group(1).split('::')[-1]


def defined_functions(code):
    return {name for head, is_def in top_level_statements(code) if is_def
            for name in [function_name(head)] if name}


def pybind_declarations(pybind):
    """({c++ name: declaration}, {python name: c++ name}) of pybind.cpp."""
    code = strip_code(pybind)
    module = code.index('PYBIND11_MODULE')
    decls = {}
    for head, is_def in top_level_statements(code[:module]):
        name = function_name(head)
        if name and not is_def:
            decls[name] = ' '.join(head.split())
    names = {}
    for py, cxx in re.findall(r'm\.def\(\s*"(\w+)"\s*,\s*&\s*(\w+)', pybind[module:]):
        names[py] = cxx
    return decls, names


def registrations(code):
    """[(key, device)] of REGISTER_DEVICE_IMPL(key, device, value) in stripped code."""
    return re.findall(r'REGISTER_DEVICE_IMPL\(\s*(\w+)\s*,\s*(\w+)\s*,', code)


def cudabind_sections(text):
    """cudabind.cpp as (prelude, [section...]): each section is a group of definitions that ends
    with its REGISTER_DEVICE_IMPL lines."""
    lines = text.splitlines(keepends=True)
    prelude = []
    while lines and (lines[0].startswith('#include') or not lines[0].strip()):
        prelude.append(lines.pop(0))
    sections, current, in_register, after_register = [], [], False, False
    code_lines = strip_code(''.join(lines)).splitlines(keepends=True)
    for line, code_line in zip(lines, code_lines):
        code_line = code_line.strip()
        if after_register and not in_register and code_line and not code_line.startswith('REGISTER_DEVICE_IMPL'):
            sections.append(''.join(current))
            current, after_register = [], False
        current.append(line)
        if code_line.startswith('REGISTER_DEVICE_IMPL'):
            in_register = True
        if in_register and code_line.endswith(';'):
            in_register, after_register = False, True
    if ''.join(current).strip():
        sections.append(''.join(current))
    return ''.join(prelude), sections


def c_literal(text):
    return '"' + text.replace('\\', '\\\\').replace('"', '\\"') + '"'


class Source:
    """The units of an unpacked onedl-mmcv source that its pytorch build compiles."""

    def __init__(self, root):
        self.root = Path(root)
        self.csrc = self.root / CSRC
        if not (self.csrc / 'pybind.cpp').is_file():
            raise TrimError(f'{self.root} is not an unpacked onedl-mmcv source (no {CSRC}/pybind.cpp)')
        self.pybind = (self.csrc / 'pybind.cpp').read_text()
        if TRIM_MARK in self.pybind:
            raise TrimError(f'{self.root} is trimmed already ({CSRC}/pybind.cpp): unpack it anew')
        self.units = {}  # name -> text: pytorch/x.cpp, cpu/x.cpp, cuda/x.cu, cudabind#i
        for path in sorted(self.csrc.glob('*.cpp')):
            if path.name != 'pybind.cpp':
                self.units[f'pytorch/{path.name}'] = path.read_text()
        for path in sorted(self.csrc.glob('cpu/*.cpp')):
            self.units[f'cpu/{path.name}'] = path.read_text()
        for path in sorted(self.csrc.glob('cuda/*.cu')):
            self.units[f'cuda/{path.name}'] = path.read_text()
        self.cudabind_prelude, sections = cudabind_sections((self.csrc / 'cuda' / 'cudabind.cpp').read_text())
        for i, text in enumerate(sections):
            self.units[f'cudabind#{i}'] = text
        self.code = {name: strip_code(text) for name, text in self.units.items()}
        self.defines = {name: defined_functions(code) for name, code in self.code.items()}
        self.registers = {name: {k for k, _ in registrations(code)} for name, code in self.code.items()}
        definers = {}
        for name, funcs in self.defines.items():
            for f in funcs:
                definers.setdefault(f, set()).add(name)
        # a function defined in one unit only: a real dependency (static helpers repeat across units)
        self.definer = {f: next(iter(units)) for f, units in definers.items() if len(units) == 1}
        self.decls, self.py_names = pybind_declarations(self.pybind)

    def owner(self, cxx):
        units = [u for u in self.units if u.startswith('pytorch/') and cxx in self.defines[u]]
        if len(units) != 1:
            raise TrimError(f"mmcv op '{cxx}': defined in {units or 'no unit'} of {CSRC}; "
                            'tools/lib/trim_mmcv.py expects exactly one')
        return units[0]

    def keep(self, ops):
        unknown = [op for op in ops if op not in self.py_names]
        if unknown:
            raise TrimError(f'tools/lib/mmcv_ops.txt names {", ".join(unknown)}: not a function of '
                            f"mmcv._ext in this onedl-mmcv (see m.def in {CSRC}/pybind.cpp)")
        kept = {self.owner(self.py_names[op]) for op in ops} | {f'pytorch/{u}' for u in ALWAYS}
        while True:
            defined = set().union(*(self.defines[u] for u in kept))
            new = {u for u in self.units if u not in kept and self.registers[u] & defined}
            for u in kept:
                for ident in set(IDENT.findall(self.code[u])) - self.defines[u]:
                    if ident in self.definer and self.definer[ident] not in kept:
                        new.add(self.definer[ident])
            if not new:
                return kept
            kept |= new

    def trim(self, ops, build_key):
        kept = self.keep(ops)
        defined = set().union(*(self.defines[u] for u in kept))
        stubbed = sorted(py for py, cxx in self.py_names.items() if cxx not in defined)
        for unit in self.units:
            if unit not in kept and not unit.startswith('cudabind#'):
                (self.csrc / unit.replace('pytorch/', '', 1)).unlink()
        sections = [self.units[u] for u in sorted((u for u in kept if u.startswith('cudabind#')),
                                                  key=lambda u: int(u.split('#')[1]))]
        (self.csrc / 'cuda' / 'cudabind.cpp').write_text(self.cudabind_prelude + ''.join(sections))
        marker = 'PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {'
        if self.pybind.count(marker) != 1:
            raise TrimError(f"{CSRC}/pybind.cpp: no single '{marker}' line to add the trim's description to")
        pybind = without_bindings(self.pybind, set(stubbed))
        left = [cxx for cxx in self.decls if cxx not in defined
                and re.search(r'&\s*' + cxx + r'\b', strip_code(pybind[pybind.index(marker):]))]
        if left:
            raise TrimError(f'{CSRC}/pybind.cpp still refers to {left}, which the trimmed build does not '
                            'compile: tools/lib/trim_mmcv.py does not know this way of binding')
        pybind = pybind.replace('#include <torch/extension.h>', '#include <torch/python.h>', 1)
        (self.csrc / 'pybind.cpp').write_text(pybind.replace(
            marker, self.support(stubbed, build_key) + marker + f'\n  {TRIM_MARK}(m);', 1))
        units = sorted(u for u in kept if not u.startswith('cudabind#'))
        united = self.unite([u for u in units if not u.startswith('cuda/')])
        return units, united, sum(u.startswith('cudabind#') for u in kept), stubbed

    def unite(self, units):
        """Compile ``units`` as one (see the module's doc); returns them, or [] when two define a
        function of the same name and they stay apart."""
        named = [name for u in units for name in self.defines[u]]
        if len(units) < 2 or len(named) != len(set(named)):
            return []
        includes = []
        for unit in units:
            rel = unit.replace('pytorch/', '', 1)
            target = self.csrc / UNITED / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            (self.csrc / rel).rename(target)
            includes.append(f'#include "{UNITED}/{rel}"\n')
        (self.csrc / UNITY).write_text('// Added by tools/lib/trim_mmcv.py (mmdet-dinov2): the kept C++ '
                                       'units, compiled as one.\n' + ''.join(includes))
        return units

    @staticmethod
    def support(stubbed, build_key):
        """What a trimmed pybind.cpp adds before its module: the error of an op left out, and the
        function that binds every such op to it and describes the trim."""
        message = ' + op + '.join(f'std::string({c_literal(part)})' for part in MESSAGE.split('{op}'))
        names = ',\n      '.join(c_literal(n) for n in stubbed)
        return '\n'.join([
            '// Added by tools/lib/trim_mmcv.py (mmdet-dinov2): the ops this build leaves out raise',
            '// NotImplementedError naming the op.',
            '[[noreturn]] static void mmdet_dinov2_not_compiled(const char *op) {',
            f'  std::string message = {message};',
            '  PyErr_SetString(PyExc_NotImplementedError, message.c_str());',
            '  throw py::error_already_set();', '}', '',
            f'static void {TRIM_MARK}(py::module &m) {{',
            f'  static const char *const stubbed[] = {{\n      {names}}};',
            '  py::list names;',
            '  for (const char *name : stubbed) {',
            '    m.def(name, [name](py::args, py::kwargs) { mmdet_dinov2_not_compiled(name); });',
            '    names.append(name);', '  }',
            f'  m.attr("_mmdet_dinov2_trim") = {c_literal(build_key)};',
            '  m.attr("_mmdet_dinov2_stubbed") = py::tuple(names);', '}', '', ''])


def without_bindings(pybind, names):
    """pybind.cpp without its ``m.def("name", ...);`` statements of ``names``."""
    code = strip_code(pybind)
    out, pos = [], 0
    for m in re.finditer(r'm\.def\(', code):
        name = re.match(r'm\.def\(\s*"(\w+)"', pybind[m.start():])
        if not name or name.group(1) not in names:
            continue
        depth, i = 0, m.end() - 1
        while True:
            depth += {'(': 1, ')': -1}.get(code[i], 0)
            i += 1
            if depth == 0:
                break
        end = code.index(';', i) + 1
        end += code[end:].startswith('\n')
        line_start = pybind.rindex('\n', 0, m.start()) + 1
        start = line_start if not pybind[line_start:m.start()].strip() else m.start()
        out.append(pybind[pos:start])
        pos = end
    return ''.join(out) + pybind[pos:]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('command', choices=['key', 'trim'])
    parser.add_argument('source', nargs='?', help='trim: the unpacked onedl-mmcv source folder')
    parser.add_argument('--ops', default=str(DEFAULT_OPS), help='the list of ops (default: %(default)s)')
    args = parser.parse_args(argv)
    try:
        build_key = key(args.ops)
        if args.command == 'key':
            print(build_key)
            return 0
        if not args.source:
            parser.error('trim needs the source folder')
        src = Source(args.source)
        units, united, sections, stubbed = src.trim(read_ops(args.ops), build_key)
        cxx = ['pybind.cpp'] + [u for u in units if not u.startswith('cuda/') and u not in united]
        if united:
            cxx.append(f'{UNITY}: {" + ".join(united)}')
        cuda = [u for u in units if u.startswith('cuda/')]
        print(f'    trimmed ({build_key}): {len(cxx)} C++ units ({", ".join(cxx)}; {len(stubbed)} '
              f'ops left out, bound to an error), and for CUDA builds {len(cuda)} CUDA units '
              f'({", ".join(cuda)}) and {sections} sections of cuda/cudabind.cpp')
        return 0
    except (OSError, TrimError) as e:
        print(f'!! trim_mmcv.py: {e}', file=sys.stderr)
        return 1


if __name__ == '__main__':
    sys.exit(main())
