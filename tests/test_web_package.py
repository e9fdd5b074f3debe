"""web/ as an npm package (`verification-widget`): its `exports` resolve, its type
declarations match what the modules export and type-check a front end's use of them,
and `npm pack` ships the files. The page itself keeps importing './verify.js' (the
browser test runs it)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT
from node_tools import needs_node, npm_install

WEB = ROOT / "web"
PACKAGE = json.loads((WEB / "package.json").read_text())


def node(script: str, cwd: Path) -> str:
    done = subprocess.run(["node", "--input-type=module", "-e", script], cwd=cwd,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture
def consumer(tmp_path: Path) -> Path:
    """A front-end project with the package installed from the repo (as `npm install
    ../web` does: a link in node_modules)."""
    (tmp_path / "node_modules").mkdir()
    (tmp_path / "node_modules" / PACKAGE["name"]).symlink_to(WEB, target_is_directory=True)
    (tmp_path / "package.json").write_text('{"type": "module"}')
    return tmp_path


def test_every_export_target_and_shipped_file_exists():
    targets = [t for entry in PACKAGE["exports"].values()
               for t in (entry.values() if isinstance(entry, dict) else [entry])]
    for target in targets + PACKAGE["files"] + [PACKAGE["types"]]:
        assert (WEB / target).is_file(), target
    assert PACKAGE["exports"]["."] == {"types": "./verify.d.ts", "default": "./verify.js"}


def declared(dts: str) -> set[str]:
    return set(re.findall(r"^export declare (?:const|function|class) (\w+)", dts, re.MULTILINE))


@needs_node
def test_the_declarations_name_exactly_what_the_modules_export(consumer):
    names = json.loads(node(
        "const v = await import('verification-widget');"
        "const m = await import('verification-widget/messages');"
        "console.log(JSON.stringify([Object.keys(v), Object.keys(m)]))", consumer))
    assert set(names[0]) == declared((WEB / "verify.d.ts").read_text())
    assert set(names[1]) == declared((WEB / "messages.d.ts").read_text())


@needs_node
def test_a_front_end_using_the_package_type_checks(consumer):
    tsc = npm_install()
    (consumer / "app.ts").write_text("""
import { start, VerifyError, describeFailure, type VerifyEvent, linkReading, linkIsWeak,
  nextLinkState, LINK_LIMITS, type LinkState } from 'verification-widget';
import { messagesFor, format } from 'verification-widget/messages';

const messages = messagesFor({ lang: 'de', messages: { widget: { done: 'Fertig!' } } });
const events: VerifyEvent[] = [];
export async function run(container: HTMLElement): Promise<string> {
  try {
    const payload = await start({
      sessionUrl: { whip_url: 'w', session_token: 't', session_id: 's', result_url: 'r' },
      container, lang: messages.lang, onEvent: (e) => events.push(e),
    });
    return payload.messageString.status + format('{n}', { n: 1 });
  } catch (err) {
    if (err instanceof VerifyError && err.retryable) return err.code;
    return describeFailure('too_late')[0];
  }
}
// the connection hint's pure core, on a page's own peer connection
export async function linkQuality(pc: RTCPeerConnection, last: LinkState | null): Promise<string> {
  const reading = linkReading(await pc.getStats());
  const next = nextLinkState(last, reading, { ...LINK_LIMITS, readings: 3 });
  return `${next.quality ?? 'unmeasured'} ${linkIsWeak({ loss: reading.loss })}`;
}
// what must not compile: a session without its token
// @ts-expect-error
start({ sessionUrl: { whip_url: 'w' }, container: document.body });
""")
    (consumer / "tsconfig.json").write_text(json.dumps({"compilerOptions": {
        "target": "ES2022", "module": "NodeNext", "moduleResolution": "NodeNext",
        "lib": ["ES2022", "DOM"], "strict": True, "noEmit": True, "types": []},
        "files": ["app.ts"]}))
    done = subprocess.run([str(tsc), "-p", "tsconfig.json"], cwd=consumer,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed")
def test_npm_pack_ships_the_modules_their_types_and_the_styles():
    done = subprocess.run(["npm", "pack", "--dry-run", "--json"], cwd=WEB,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    files = {f["path"] for f in json.loads(done.stdout)[0]["files"]}
    assert files == {"package.json", "verify.js", "verify.d.ts", "messages.js",
                     "messages.d.ts", "style.css", "README.md"}


def test_the_page_still_imports_the_module_by_its_relative_path():
    assert "from './verify.js'" in (WEB / "app.js").read_text()
    assert "from './verify.js'" in (WEB / "example.html").read_text()
