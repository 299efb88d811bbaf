"""Real temporary git repositories in several languages for the indexing tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

SOURCES: dict[str, str] = {
    "app/models.py": '''"""Models."""

MAX_USERS = 10


class UserAccount:
    """A user."""

    def __init__(self, name):
        self.name = name

    def get_display_name(self):
        return self.name.title()


def create_account(name):
    return UserAccount(name)
''',
    "app/service.py": '''from app.models import create_account, UserAccount


def register(name):
    account = create_account(name)
    return account.get_display_name()
''',
    "web/client.js": '''// HTTP client helpers
export function fetchUserProfile(userId) {
  return request(`/users/${userId}`);
}

class ProfileCache {
  lookupEntry(key) {
    return this.store.get(key);
  }
}

const parseHeaderLine = (line) => line.split(":");
''',
    "web/types.ts": '''export interface OrderSummary {
  id: string;
  total: number;
}

export type OrderId = string;

export enum OrderState { Open, Closed }

export class OrderBook {
  computeTotals(orders: OrderSummary[]): number {
    return orders.reduce((sum, order) => sum + order.total, 0);
  }
}
''',
    "cmd/server.go": '''package main

import "fmt"

// RequestRouter routes requests.
type RequestRouter struct {
	routes map[string]string
}

func (r *RequestRouter) HandleRoute(path string) string {
	return r.routes[path]
}

func NewRequestRouter() *RequestRouter {
	fmt.Println("router")
	return &RequestRouter{}
}
''',
    "src/lib.rs": '''/// A bounded ring buffer.
pub struct RingBuffer {
    items: Vec<u8>,
}

pub trait Drainable {
    fn drain_all(&mut self) -> Vec<u8>;
}

impl RingBuffer {
    pub fn push_item(&mut self, item: u8) {
        self.items.push(item);
    }
}

pub fn make_ring_buffer() -> RingBuffer {
    RingBuffer { items: Vec::new() }
}
''',
    "src/main/java/Inventory.java": '''package shop;

public class Inventory {
    private int count;

    public Inventory() {
        this.count = 0;
    }

    public int restockShelf(int amount) {
        count += amount;
        return count;
    }
}

interface StockListener {
    void onStockChange(int level);
}
''',
    "docs/guide.md": "# Guide\n\nHow to configure the frobnication pipeline.\n\nMore text here.\n",
}


def git(repo: Path, *args: str) -> str:
    """Run git in `repo` and return its output (fails the test on error)."""
    proc = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def write(repo: Path, files: dict[str, str | bytes]) -> None:
    """Write files under `repo`, creating directories."""
    for path, content in files.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


MakeRepo = Callable[..., Path]


@pytest.fixture(autouse=True)
def vibe_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A VIBE_HOME of the test's own: the default index store (`<VIBE_HOME>/index`) is shared by every repository
    of a test, never by two tests. Set in the environment, so subprocesses of the test use it too."""
    home = tmp_path / "vibe-home"
    monkeypatch.setenv("VIBE_HOME", str(home))
    return home


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """Create a committed git repository holding `files` (default: the multi-language sample)."""
    counter = 0

    def make(files: dict[str, str | bytes] | None = None, *, commit: bool = True) -> Path:
        nonlocal counter
        counter += 1
        repo = tmp_path / f"repo{counter}"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        write(repo, dict(SOURCES) if files is None else files)
        if commit:
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "-m", "initial")
        return repo

    return make
