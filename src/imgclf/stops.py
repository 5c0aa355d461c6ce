"""SIGTERM (what SLURM and most schedulers send) and SIGINT (Ctrl-C) end a run as a stop at
whatever it is doing: reading data, the sanity check, fitting, validating, testing, writing its
report. Lightning alone reacts to SIGTERM only between training batches and exits 0, and turns
Ctrl-C into exit status 1; a scheduler would count either as a finished or a failed run."""

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from lightning.pytorch import Callback, Trainer


class RunStopped(BaseException):
    """Raised where the run is when a stop signal arrives. A BaseException, as
    KeyboardInterrupt is, so that no `except Exception` on the way swallows it."""

    def __init__(self, signal_number: int) -> None:
        self.signal_name = signal.Signals(signal_number).name
        # 128 + the signal: the status a shell reports for a process the signal ended.
        self.exit_code = 128 + signal_number
        super().__init__(f"stopped by {self.signal_name}")


def raise_stop(signal_number: int, frame: FrameType | None) -> None:
    raise RunStopped(signal_number)


@contextmanager
def stops_raised() -> Iterator[None]:
    """Within it, SIGTERM raises RunStopped at once, and Ctrl-C's KeyboardInterrupt (or the
    exit Lightning makes of it) arrives as RunStopped too. Lightning's own SIGTERM handler,
    installed while its Trainer runs, calls this one after its own."""
    previous = signal.signal(signal.SIGTERM, raise_stop)
    try:
        yield
    except KeyboardInterrupt:
        raise RunStopped(signal.SIGINT) from None
    except SystemExit as exit_:
        if isinstance(exit_.__context__, KeyboardInterrupt):  # Lightning's exit(1)
            raise RunStopped(signal.SIGINT) from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


class StopSignals(Callback):
    """Keeps SIGTERM raising RunStopped where the run is, in place of the handler Lightning
    installs as its Trainer starts a stage. Under DDP Lightning's handler broadcasts from
    inside the handler: a process that is at that moment waiting in a collective of its own
    (a validation sync) never answers, and both wait for ever. This one sends the signal on
    to the other processes of this machine, as Lightning's does, and broadcasts nothing:
    each process stops where it is, and one that waits on a stopped one stops when its
    connection closes."""

    def install(self, trainer: Trainer, *_: object) -> None:
        launcher = trainer.strategy.launcher

        def stop(signal_number: int, frame: FrameType | None) -> None:
            if launcher is not None:
                launcher.kill(signal_number)
            raise RunStopped(signal_number)

        signal.signal(signal.SIGTERM, stop)

    # The hooks that run after Lightning registers its handlers, one for each stage.
    on_sanity_check_start = on_train_start = on_validation_start = install
    on_test_start = on_predict_start = install
