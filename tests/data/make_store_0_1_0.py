"""Write the store that tests/framework/cli/test_cli_upgrade.py opens: a store as edgeroute 0.1.0
wrote it, through its own command line (hashing edge embedder, the loopback emulator as the cloud).

Run it from a checkout of the release (`python tests/data/make_store_0_1_0.py`); it builds the
folders and the store under ROOT (a fixed path, because the store records absolute source paths)
and packs ROOT into tests/data/store-0.1.0.tar.gz.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from edgeroute.framework.documents import Document
from edgeroute.framework.settings import build_engine, resolve_settings
from edgeroute.framework.testing.emulator import GeminiEmulator

ROOT = Path("/tmp/edgeroute-store-0.1.0")
OUT = Path(__file__).with_name("store-0.1.0.tar.gz")
LONG = "\n\n".join(
    " ".join(f"Leave rule {p}.{s}: staff may carry over {p + s} days of annual leave." for s in range(40))
    for p in range(3)
)
FILES = {
    "docs/hr/faq.md": "# HR questions\nPayslips are published on the last working day of the month.\n",
    "docs/hr/leave.md": "# Leave policy\n" + LONG + "\n",
    "docs/it/vpn.md": "# VPN\nConnect to the VPN before opening the intranet from home.\n",
    "docs/it/laptops.txt": "Laptops are replaced every four years; ask the service desk.\n",
    "docs/legal/contract.md": "# Supplier contract\nThe supplier contract renews each March.\n",
}


def cli(emu: GeminiEmulator, *args: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEROUTE_", "GEMINI_", "GOOGLE_"))}
    env.update(
        EDGEROUTE_STORE=str(ROOT / "store"),
        EDGEROUTE_EDGE="hashing",
        GEMINI_API_KEY="upgrade-key",
        GOOGLE_GEMINI_BASE_URL=emu.base_url,
        NO_PROXY="127.0.0.1,localhost",
    )
    cmd = [sys.executable, "-c", "from edgeroute.framework.cli import main; main()", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    print("$ edgeroute", " ".join(args), "->", proc.returncode)
    if proc.returncode not in (0, 3):
        sys.exit(proc.stderr)


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    for rel, text in FILES.items():
        (ROOT / rel).parent.mkdir(parents=True, exist_ok=True)
        (ROOT / rel).write_text(text)
    docs = ROOT / "docs"
    with GeminiEmulator() as emu:
        cli(emu, "index", str(docs / "legal"), "-c", "handbook", "--sensitivity", "confidential")
        cli(emu, "index", str(docs / "hr"), "-c", "handbook", "--sensitivity", "public")
        # Left queued in the outbox: the cloud index and the outbox both have rows.
        cli(emu, "index", str(docs / "it"), "-c", "handbook", "--sensitivity", "public", "--offline")
        # A record ingested through the library: no path or origin metadata.
        settings = resolve_settings(
            store=ROOT / "store", collection="handbook", edge="hashing", offline=True, env={}
        )
        with build_engine(settings) as engine:
            engine.ingest([Document(id="note-1", text="The canteen opens at noon.", sensitivity="public")])
    with tarfile.open(OUT, "w:gz") as tar:
        tar.add(ROOT, arcname=ROOT.name)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
