"""`dynamics.jit_cache.enable`: the CLIs' persistent compilation cache respects a folder the user set (or
an empty value, which keeps it off) and otherwise uses the XDG cache folder."""
from dynamics import jit_cache


def test_a_folder_set_by_the_user_wins_and_an_empty_value_keeps_the_cache_off(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(jit_cache.jax.config, "update", lambda *a: calls.append(a))
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(tmp_path / "mine"))
    assert jit_cache.enable() == str(tmp_path / "mine") and calls == []  # JAX reads the variable itself
    monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", "")
    assert jit_cache.enable() is None and calls == []


def test_default_folder_is_under_xdg_cache_home_and_is_created(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(jit_cache.jax.config, "update", lambda *a: calls.append(a))
    monkeypatch.delenv("JAX_COMPILATION_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    want = tmp_path / "ssl-dynamics" / "jax"
    assert jit_cache.enable() == str(want) and want.is_dir()
    assert calls == [("jax_compilation_cache_dir", str(want)),
                     ("jax_persistent_cache_min_compile_time_secs", jit_cache.MIN_COMPILE_S)]
    (tmp_path / "blocked").write_text("a file where the folder would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "blocked"))
    calls.clear()
    assert jit_cache.enable() is None and calls == []  # cannot create it: the cache stays off
