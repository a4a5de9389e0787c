"""Makes the reference stack the device check carries importable on a machine with other versions installed.

The bundle (prepare-bundle.sh) carries diffusers 0.29.2, transformers at the reference stack's v4.40 branch point
(what the golden cases and the bench import of it) and huggingface_hub 0.24.6 as src/ on PYTHONPATH; torch, numpy,
Pillow, safetensors and tokenizers are the machine's. Call prepare() before importing diffusers or transformers."""
import os
import sys
import types


def prepare():
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):  # the GPU machine has no network: never wait for one
        os.environ.setdefault(key, "1")
    skip_install_time_version_check()
    hashable_fallback_added_token()


def skip_install_time_version_check():
    """transformers 4.40 checks at import that installed packages are in its pip ranges, and the GPU machine's
    tokenizers is newer than its pin, although these scripts only use the pure-Python CLIPTokenizer. That blanket check
    guards installation, not results, so it is skipped; the per-feature check the module also offers
    (dep_version_check) still runs when something calls it."""
    def dep_version_check(pkg, hint=None):
        from transformers.dependency_versions_table import deps
        from transformers.utils.versions import require_version
        require_version(deps[pkg], hint)

    check = types.ModuleType("transformers.dependency_versions_check")
    check.dep_version_check = dep_version_check
    sys.modules.setdefault("transformers.dependency_versions_check", check)


def hashable_fallback_added_token():
    """Without the tokenizers package, transformers 4.40's fallback AddedToken is unhashable (the reference stack's
    refenv.py carries the same fix): hash it by content and let it be unpickled, as the Rust one does."""
    import transformers.tokenization_utils_base as tokenization_base
    if getattr(tokenization_base.AddedToken, "__hash__", None) is None:
        tokenization_base.AddedToken.__hash__ = lambda self: hash(self.content)
    if not hasattr(tokenization_base.AddedToken, "__setstate__"):
        tokenization_base.AddedToken.__setstate__ = lambda self, state: self.__dict__.update(state)
