import subprocess
import sys
from pathlib import Path

import agentclinic
import agentclinic.agents
import agentclinic.tools

REPO = Path(__file__).resolve().parents[1]


def test_agents_and_tools_are_installed_under_agentclinic():
    assert Path(agentclinic.agents.__file__).parent == REPO / "agents"
    assert Path(agentclinic.tools.__file__).parent == REPO / "tools"


def test_no_top_level_agents_or_tools_modules_of_ours(tmp_path):
    """Outside the checkout, 'agents' and 'tools' are not import names this distribution provides."""
    code = ("import importlib.util as u\n"
            "for n in ('agents', 'tools'):\n"
            "    s = u.find_spec(n)\n"
            "    print(n, s.origin if s else None)")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        assert str(REPO) not in line, line


def test_public_api():
    assert agentclinic.__version__
    assert callable(agentclinic.load_scenarios)
