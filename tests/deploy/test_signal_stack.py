"""OpenVINO leaves the main thread a signal stack that exists: after models are loaded and dropped
in any order, and after NNCF, a Ctrl-C is still a KeyboardInterrupt, not a segmentation fault
(the suite died of it in the Ctrl-C resume test, after the accuracy-control test)."""

import ctypes
import subprocess
import sys
import textwrap

import pytest

from detection.utils import signal_stack

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack is read on Linux")

# Two models loaded, then dropped in the order they were loaded: with a Core for each, the second
# plugin instance puts back the first one's stack, which the first one unmapped.
TWO_MODELS_DROPPED_IN_ORDER = textwrap.dedent("""
    import gc, os, signal, sys
    import openvino as ov, torch
    from detection.inference.predictor import OpenVINOBackend
    from detection.utils import signal_stack

    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
    ov.save_model(ov.convert_model(net, example_input=torch.zeros(1, 3, 16, 16)), sys.argv[1])
    first, second = OpenVINOBackend(sys.argv[1]), OpenVINOBackend(sys.argv[1])
    del first
    gc.collect()
    del second
    gc.collect()
    address = signal_stack.current()[0]
    print("stack mapped:", address == 0 or signal_stack.is_mapped(address), flush=True)
    try:
        os.kill(os.getpid(), signal.SIGINT)
        signal.pthread_sigmask(signal.SIG_BLOCK, [])  # a point where the handler has run
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
""")


@linux_only
def test_models_dropped_in_the_order_they_were_loaded_leave_ctrl_c_a_keyboard_interrupt(tmp_path):
    pytest.importorskip("openvino")
    out = subprocess.run([sys.executable, "-c", TWO_MODELS_DROPPED_IN_ORDER, str(tmp_path / "m.xml")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])
    assert "stack mapped: True" in out.stdout and "KeyboardInterrupt" in out.stdout


@linux_only
def test_kept_puts_back_the_stack_it_found():
    before = signal_stack.current()
    other = ctypes.create_string_buffer(64 * 1024)
    with signal_stack.kept():
        signal_stack._set((ctypes.addressof(other), len(other), 0))
        assert signal_stack.current()[0] == ctypes.addressof(other)
    assert signal_stack.current() == before
    assert signal_stack.is_mapped(ctypes.addressof(other)) and not signal_stack.is_mapped(0)
