import collections
import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from jax.test_util import check_grads
from rich.console import Console, Group

import difmachine as dm
from difmachine import testing
from difmachine.protocol import activate
from difmachine.trace import RENDERERS

# -- invariants for check_device --------------------------------------------------------------


def structure_invariants(final, reads, traces):
    s = np.asarray(final["strengths"])
    assert np.all((s >= 0.0) & (s <= 1.0)), f"strengths outside [0, 1]: {s}"
    for key, w in traces.items():
        w = np.asarray(w)
        if key == "strengths":
            assert np.all((w >= 0.0) & (w <= 1.0)), "traced strengths outside [0, 1]"
        if key.startswith("read_weights"):
            assert np.all(w >= 0.0), f"{key} has negative entries"
            assert np.all(w.sum(-1) <= 1.0 + 1e-5), f"{key} sum to more than 1: {w.sum(-1)}"


def joulin_invariants(device):
    lo, hi = min(0.0, device.empty_value), max(1.0, device.empty_value)

    def check(final, reads, traces):
        a = np.asarray(traces["action"])
        assert np.all(a >= 0.0)
        np.testing.assert_allclose(a.sum(-1), 1.0, atol=1e-5, err_msg="actions must sum to 1")
        # every entry is a convex combination of pushed values (in [0, 1]) and empty_value
        stack = np.asarray(final["stack"])
        assert np.all((stack >= lo - 1e-5) & (stack <= hi + 1e-5)), "stack left its hull"

    return check


@pytest.mark.parametrize(
    "device",
    [
        dm.NeuralStack(width=3, capacity=6),
        dm.NeuralQueue(width=3, capacity=6),
        dm.NeuralDeque(width=2, capacity=5),
        dm.NeuralStack(width=2, capacity=2),  # 4 steps > capacity: clamped writes stay valid
    ],
    ids=["stack", "queue", "deque", "stack-overflowing"],
)
def test_grefenstette_protocol(device):
    testing.check_device(device, invariants=structure_invariants)


@pytest.mark.parametrize(
    "device",
    [
        dm.JoulinStack(depth=5, width=2, stacks=2),
        dm.JoulinStack(depth=2, actions=("push", "pop"), read_top=1, empty_value=0.0),
    ],
    ids=["2stacks-width2", "no-noop"],
)
def test_joulin_protocol(device):
    testing.check_device(device, invariants=joulin_invariants(device))


def test_stack_and_ntm_machine():
    """Two devices of different kinds, one with two read heads, under a GRU (the kit's machine
    checks of a two-device machine: tests/test_compiler.py checks one-device machines)."""
    machine = dm.Machine(
        dm.GRU(6),
        {
            "stack": dm.NeuralStack(width=4, capacity=8),
            "memory": dm.NTMMemory(slots=5, width=2, read_heads=2),
        },
    )
    testing.check_machine(machine)


# -- numpy references: the papers' equations with explicit O(n^2) sums --------------------------


def ref_single_ended(kind, V, s, t, u, d, v):
    """One step of Grefenstette's stack ("stack") or queue ("queue"), sums bounded by t."""
    V, s_old = V.copy(), s.copy()
    s = s_old.copy()
    for i in range(t):
        js = range(i + 1, t) if kind == "stack" else range(i)
        s[i] = max(0.0, s_old[i] - max(0.0, u - sum(s_old[j] for j in js)))
    V[t], s[t] = v, d
    w = np.zeros_like(s)
    for i in range(t + 1):
        js = range(i + 1, t + 1) if kind == "stack" else range(i)
        w[i] = min(s[i], max(0.0, 1.0 - sum(s[j] for j in js)))
    return w @ V, V, s


def ref_deque(C, V, s, t, iface):
    n = 2 * C

    def pop(s, u, top):
        out = s.copy()
        for i in range(n):
            js = range(i + 1, n) if top else range(i)
            out[i] = max(0.0, s[i] - max(0.0, u - sum(s[j] for j in js)))
        return out

    def weights(s, top):
        js = (lambda i: range(i + 1, n)) if top else (lambda i: range(i))
        return np.array([min(s[i], max(0.0, 1.0 - sum(s[j] for j in js(i)))) for i in range(n)])

    V, s = V.copy(), pop(pop(s, iface["pop_top"], True), iface["pop_bottom"], False)
    V[C + t], s[C + t] = iface["value_top"], iface["push_top"]
    V[C - 1 - t], s[C - 1 - t] = iface["value_bottom"], iface["push_bottom"]
    return np.concatenate([weights(s, True) @ V, weights(s, False) @ V]), V, s


def ref_joulin(device, S, iface):
    new = np.zeros_like(S)
    for k in range(device.stacks):
        a = dict(zip(device.actions, iface["action"][k]))
        push = np.concatenate([iface["value"][k][None], S[k, :-1]])
        pop = np.concatenate([S[k, 1:], np.full((1, device.width), device.empty_value)])
        new[k] = a.get("push", 0) * push + a.get("pop", 0) * pop + a.get("noop", 0) * S[k]
    return new[:, : device.read_top].reshape(-1), new


SOFT_DEVICES = {
    "stack": dm.NeuralStack(width=3, capacity=7),
    "queue": dm.NeuralQueue(width=3, capacity=7),
    "deque": dm.NeuralDeque(width=2, capacity=7),
    "joulin": dm.JoulinStack(depth=4, width=2, stacks=2, read_top=2),
}
SOFT_STEPS = 7


def _soft_runner(device):
    fields = device.interface()

    def run(raw):
        def body(state, raw_t):
            iface = {n: activate(fields[n].activation, raw_t[n]) for n in fields}
            read, state, _ = device.step({}, state, iface)
            return state, (read, iface)

        return jax.lax.scan(body, device.init_state({}), raw)

    return jax.jit(run)


SOFT_RUNNERS = {name: _soft_runner(dev) for name, dev in SOFT_DEVICES.items()}


@pytest.mark.parametrize("name", sorted(SOFT_DEVICES))
@given(seed=testing.seeds)
def test_soft_steps_match_numpy_reference(name, seed):
    """Random soft signals (not just 0/1): every step's read equals the paper's equations."""
    device = SOFT_DEVICES[name]
    raw = testing.random_interface(device, jax.random.PRNGKey(seed), SOFT_STEPS)
    _, (reads, ifaces) = SOFT_RUNNERS[name](raw)
    reads = np.asarray(reads, np.float64)
    ifaces = {k: np.asarray(v, np.float64) for k, v in ifaces.items()}
    state = {k: np.asarray(v, np.float64) for k, v in device.init_state({}).items()}
    for t in range(SOFT_STEPS):
        iface = {k: v[t] for k, v in ifaces.items()}
        if name == "joulin":
            expected, state["stack"] = ref_joulin(device, state["stack"], iface)
        elif name == "deque":
            expected, state["values"], state["strengths"] = ref_deque(
                device.capacity, state["values"], state["strengths"], t, iface
            )
        else:
            expected, state["values"], state["strengths"] = ref_single_ended(
                name,
                state["values"],
                state["strengths"],
                t,
                *(iface[k] for k in ("pop", "push", "value")),
            )
        np.testing.assert_allclose(reads[t], expected, atol=2e-5, err_msg=f"step {t}")


# -- hard 0/1 signals: exactly a Python list / queue / deque (hypothesis state machines) --------

CAPACITY, WIDTH = 12, 3
RULE_SETTINGS = settings(max_examples=40, stateful_step_count=10)  # 10 steps < capacity 12

STACK = dm.NeuralStack(width=WIDTH, capacity=CAPACITY)
QUEUE = dm.NeuralQueue(width=WIDTH, capacity=CAPACITY)
DEQUE = dm.NeuralDeque(width=WIDTH, capacity=CAPACITY)
JOULIN = dm.JoulinStack(depth=4, width=2, stacks=2, read_top=2, empty_value=-1.0)

# compiled once per device, reused by every example of every state machine
stack_step = jax.jit(lambda state, iface: STACK.step({}, state, iface))
queue_step = jax.jit(lambda state, iface: QUEUE.step({}, state, iface))
deque_step = jax.jit(lambda state, iface: DEQUE.step({}, state, iface))
joulin_step = jax.jit(lambda state, iface: JOULIN.step({}, state, iface))

vectors = st.lists(
    st.floats(-1.0, 1.0, width=32, allow_nan=False), min_size=WIDTH, max_size=WIDTH
).map(lambda xs: np.asarray(xs, np.float32))


def hard(flag: bool) -> np.float32:
    return np.float32(1.0 if flag else 0.0)


class SingleEndedRules(RuleBasedStateMachine):
    """Drives a NeuralStack or NeuralQueue with hard signals next to a Python reference.

    One step pops (if asked and non-empty), then pushes (if asked), then reads the top (stack)
    or the front (queue); an empty structure reads zeros.
    """

    device, step_fn, lifo = STACK, staticmethod(stack_step), True

    def __init__(self):
        super().__init__()
        self.state = self.device.init_state({})
        self.ref = collections.deque()

    @rule(push=st.booleans(), pop=st.booleans(), value=vectors)
    def step(self, push, pop, value):
        iface = {"value": value, "push": hard(push), "pop": hard(pop)}
        read, self.state, _ = self.step_fn(self.state, iface)
        if pop and self.ref:
            if self.lifo:
                self.ref.pop()
            else:
                self.ref.popleft()
        if push:
            self.ref.append(value)
        if self.ref:
            expected = self.ref[-1] if self.lifo else self.ref[0]
        else:
            expected = np.zeros(WIDTH, np.float32)
        np.testing.assert_allclose(np.asarray(read), expected, atol=1e-6)

    @invariant()
    def strengths_are_hard_and_count_the_elements(self):
        s = np.asarray(self.state["strengths"])
        assert set(np.unique(s)) <= {0.0, 1.0}, f"strengths not 0/1: {s}"
        assert s.sum() == len(self.ref)


class QueueRules(SingleEndedRules):
    device, step_fn, lifo = QUEUE, staticmethod(queue_step), False


class DequeRules(RuleBasedStateMachine):
    """NeuralDeque vs collections.deque: top = right end, bottom = left end.

    One step: pop top, pop bottom, push top, push bottom, then read [top; bottom].
    """

    def __init__(self):
        super().__init__()
        self.state = DEQUE.init_state({})
        self.ref = collections.deque()

    @rule(
        push_top=st.booleans(),
        push_bottom=st.booleans(),
        pop_top=st.booleans(),
        pop_bottom=st.booleans(),
        value_top=vectors,
        value_bottom=vectors,
    )
    def step(self, push_top, push_bottom, pop_top, pop_bottom, value_top, value_bottom):
        iface = {
            "value_top": value_top,
            "value_bottom": value_bottom,
            "push_top": hard(push_top),
            "push_bottom": hard(push_bottom),
            "pop_top": hard(pop_top),
            "pop_bottom": hard(pop_bottom),
        }
        read, self.state, _ = deque_step(self.state, iface)
        if pop_top and self.ref:
            self.ref.pop()
        if pop_bottom and self.ref:
            self.ref.popleft()
        if push_top:
            self.ref.append(value_top)
        if push_bottom:
            self.ref.appendleft(value_bottom)
        zero = np.zeros(WIDTH, np.float32)
        top, bottom = (self.ref[-1], self.ref[0]) if self.ref else (zero, zero)
        np.testing.assert_allclose(np.asarray(read), np.concatenate([top, bottom]), atol=1e-6)

    @invariant()
    def strengths_are_hard_and_count_the_elements(self):
        s = np.asarray(self.state["strengths"])
        assert set(np.unique(s)) <= {0.0, 1.0}, f"strengths not 0/1: {s}"
        assert s.sum() == len(self.ref)


joulin_values = st.lists(
    st.floats(0.0, 1.0, width=32), min_size=JOULIN.width, max_size=JOULIN.width
)


class JoulinRules(RuleBasedStateMachine):
    """JoulinStack with one-hot actions vs lists of depth entries (index 0 = top)."""

    def __init__(self):
        super().__init__()
        self.state = JOULIN.init_state({})
        empty = [JOULIN.empty_value] * JOULIN.width
        self.empty = empty
        self.ref = [[empty] * JOULIN.depth for _ in range(JOULIN.stacks)]

    @rule(
        actions=st.lists(
            st.sampled_from(JOULIN.actions), min_size=JOULIN.stacks, max_size=JOULIN.stacks
        ),
        values=st.lists(joulin_values, min_size=JOULIN.stacks, max_size=JOULIN.stacks),
    )
    def step(self, actions, values):
        one_hot = np.asarray(
            [[float(a == name) for name in JOULIN.actions] for a in actions], np.float32
        )
        iface = {"action": one_hot, "value": np.asarray(values, np.float32)}
        read, self.state, _ = joulin_step(self.state, iface)
        for k, (action, v) in enumerate(zip(actions, values)):
            if action == "push":
                self.ref[k] = [v] + self.ref[k][:-1]
            elif action == "pop":
                self.ref[k] = self.ref[k][1:] + [self.empty]
        expected = np.asarray([stack[: JOULIN.read_top] for stack in self.ref], np.float32)
        np.testing.assert_allclose(np.asarray(read), expected.reshape(-1), atol=1e-6)

    @invariant()
    def whole_stack_matches(self):
        np.testing.assert_allclose(
            np.asarray(self.state["stack"]), np.asarray(self.ref, np.float32), atol=1e-6
        )


@pytest.mark.parametrize(
    "rules", [SingleEndedRules, QueueRules, DequeRules, JoulinRules], ids=lambda r: r.__name__
)
def test_hard_signals_behave_like_python_structures(rules):
    run_state_machine_as_test(rules, settings=RULE_SETTINGS)


def test_rule_steps_compile_once():
    state = STACK.init_state({})
    iface = {"value": np.ones(WIDTH, np.float32), "push": hard(True), "pop": hard(False)}
    state = stack_step(state, iface)[1]
    with testing.count_compiles() as counter:
        for _ in range(3):
            state = stack_step(state, {**iface, "pop": hard(True)})[1]
    assert counter.compiles == 0


# -- edge cases ---------------------------------------------------------------------------------


def _hard_iface(device, **signals):
    """Raw (already activated) interface: zero values and the given push/pop/action values."""
    iface = {n: np.zeros(f.shape, np.float32) for n, f in device.interface().items()}
    iface.update({k: np.asarray(v, np.float32) for k, v in signals.items()})
    return iface


@pytest.mark.parametrize(
    "device, signals",
    [
        (dm.NeuralStack(width=3, capacity=4), {"pop": 1.0}),
        (dm.NeuralQueue(width=3, capacity=4), {"pop": 1.0}),
        (dm.NeuralDeque(width=3, capacity=4), {"pop_top": 1.0, "pop_bottom": 1.0}),
    ],
    ids=["stack", "queue", "deque"],
)
def test_pop_on_empty_reads_zeros(device, signals):
    state = device.init_state({})
    for _ in range(3):
        read, state, trace = device.step({}, state, _hard_iface(device, **signals))
        np.testing.assert_array_equal(np.asarray(read), 0.0)
        np.testing.assert_array_equal(np.asarray(state["strengths"]), 0.0)
        testing.assert_finite((read, state, trace), "pop on empty")


def test_joulin_pop_on_empty_reads_empty_value():
    device = dm.JoulinStack(depth=3, width=2, read_top=2, empty_value=-0.5)
    state = device.init_state({})
    pop = np.asarray([[0.0, 1.0, 0.0]], np.float32)
    read, state, _ = device.step({}, state, _hard_iface(device, action=pop))
    np.testing.assert_array_equal(np.asarray(read), -0.5)
    np.testing.assert_array_equal(np.asarray(state["stack"]), -0.5)


def test_joulin_push_puts_value_on_top_and_reads_top_entries():
    device = dm.JoulinStack(depth=3, width=1, read_top=2)
    state = device.init_state({})
    push = np.asarray([[1.0, 0.0, 0.0]], np.float32)
    pop = np.asarray([[0.0, 1.0, 0.0]], np.float32)
    read, state, _ = device.step({}, state, _hard_iface(device, action=push, value=[[0.25]]))
    np.testing.assert_allclose(read, [0.25, -1.0])
    read, state, _ = device.step({}, state, _hard_iface(device, action=push, value=[[0.75]]))
    np.testing.assert_allclose(read, [0.75, 0.25])
    read, state, _ = device.step({}, state, _hard_iface(device, action=pop))
    np.testing.assert_allclose(read, [0.25, -1.0])
    half = np.asarray([[0.5, 0.0, 0.5]], np.float32)  # soft: half push, half noop
    read, state, _ = device.step({}, state, _hard_iface(device, action=half, value=[[1.0]]))
    np.testing.assert_allclose(read, [0.5 * 1.0 + 0.5 * 0.25, 0.5 * 0.25 + 0.5 * -1.0])


def _tie_state(device):
    """Strengths exactly 0, 1 and 0.5 (and sums that tie with the pop signals used below)."""
    state = device.init_state({})
    n = state["strengths"].shape[0]
    s = np.zeros(n, np.float32)
    s[:5] = [1.0, 0.5, 0.5, 0.0, 1.0]
    if isinstance(device, dm.NeuralDeque):
        s = np.roll(s, device.capacity - 3)  # straddle the middle
    values = jax.random.normal(jax.random.PRNGKey(0), state["values"].shape, jnp.float32)
    return {"values": values, "strengths": jnp.asarray(s), "t": jnp.asarray(5, jnp.int32)}


@pytest.mark.parametrize(
    "device",
    [
        dm.NeuralStack(width=2, capacity=10),
        dm.NeuralQueue(width=2, capacity=10),
        dm.NeuralDeque(width=2, capacity=10),
    ],
    ids=["stack", "queue", "deque"],
)
def test_gradients_finite_at_ties(device):
    # pops of exactly 1 (= one strength), 0.5 (= another), 2.0 (= a suffix sum), 0 and 1 pushes
    ties = np.asarray([1.0, 0.5, 2.0, 0.0], np.float32)
    pushes = np.asarray([1.0, 0.0, 0.5, 1.0], np.float32)

    def loss(strengths, values, ties, pushes, v):
        state = {**_tie_state(device), "strengths": strengths, "values": values}
        total = 0.0
        for k in range(len(ties)):
            signals = {}
            for name, field in device.interface().items():
                if name.startswith("pop"):
                    signals[name] = ties[k]
                elif name.startswith("push"):
                    signals[name] = pushes[k]
                else:
                    signals[name] = v[k]
            read, state, _ = device.step({}, state, signals)
            total = total + jnp.sum(read**2) + jnp.sum(state["strengths"])
        return total

    state = _tie_state(device)
    v = jnp.ones((len(ties), device.width), jnp.float32)
    grad_fn = jax.jit(jax.grad(loss, argnums=(0, 1, 2, 3, 4)))
    grads = grad_fn(state["strengths"], state["values"], ties, pushes, v)
    testing.assert_finite(grads, "gradients at ties")
    # and from an empty structure with all-zero signals
    empty = device.init_state({})
    zero = np.zeros(len(ties), np.float32)
    grads = grad_fn(empty["strengths"], empty["values"], zero, zero, jnp.zeros_like(v))
    testing.assert_finite(grads, "gradients from empty")


@pytest.mark.parametrize("name", ["stack", "queue", "deque"])
def test_gradients_match_finite_differences(name):
    """Away from the kinks of max/min, analytic gradients match numerical ones."""
    device = SOFT_DEVICES[name]
    raw = testing.random_interface(device, jax.random.PRNGKey(3), 4)

    def f(raw):
        _, (reads, _) = SOFT_RUNNERS[name](raw)
        return jnp.sum(jnp.sin(reads))

    check_grads(f, (raw,), order=1, modes=("rev",), eps=1e-2, atol=2e-2, rtol=2e-2)


def test_overflow_clamps_writes_to_the_last_slot():
    device = dm.NeuralStack(width=1, capacity=3)
    state = device.init_state({})
    for k in range(6):
        read, state, _ = device.step({}, state, _hard_iface(device, push=1.0, value=[k / 10]))
        np.testing.assert_allclose(read, [k / 10], atol=1e-7)  # the newest push is on top
    assert int(state["t"]) == 3 and state["t"].dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(state["strengths"]), 1.0)
    read, state, _ = device.step({}, state, _hard_iface(device, pop=1.0))
    np.testing.assert_allclose(read, [0.1], atol=1e-7)  # what the overflow did not overwrite


@pytest.mark.parametrize(
    "device",
    [*SOFT_DEVICES.values(), dm.JoulinStack(depth=3)],
    ids=[*SOFT_DEVICES, "joulin-default"],
)
def test_state_dtypes_are_strong_and_stable(device):
    state = device.init_state({})
    read, new, _ = device.step({}, state, _hard_iface(device))
    for before, after in zip(jax.tree.leaves(state), jax.tree.leaves(new)):
        assert before.dtype == after.dtype and before.dtype in (jnp.float32, jnp.int32)
        assert not before.weak_type and not after.weak_type
    assert read.dtype == jnp.float32 and read.shape == (device.read_size,)


# -- traces ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SOFT_DEVICES))
def test_trace_fields_have_specs_and_render(name):
    device = SOFT_DEVICES[name]
    fields = device.interface()
    raw = testing.random_interface(device, jax.random.PRNGKey(0), 5)

    def body(state, raw_t):
        iface = {n: activate(fields[n].activation, raw_t[n]) for n in fields}
        _, state, trace = device.step({}, state, iface)
        return state, trace

    _, traces = jax.lax.scan(body, device.init_state({}), raw)
    specs = device.trace_spec()
    assert set(traces) == set(specs)
    console = Console(file=io.StringIO(), force_terminal=True, width=80)
    for key, data in traces.items():
        spec = specs[key]
        expected_rank = 2 if spec.kind == "scalars" else 3  # [T, heads] or [T, heads, K]
        assert data.ndim == expected_rank, f"{key}: {data.shape} for kind {spec.kind}"
        if spec.kind == "options":
            assert data.shape[-1] == len(spec.options)
        console.print(Group(*RENDERERS[spec.kind](key, np.asarray(data), spec, 80)))
    assert "strengths" in console.file.getvalue() or "contents" in console.file.getvalue()


# -- spec validation -------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [dm.NeuralStack, dm.NeuralQueue, dm.NeuralDeque])
def test_check_length_says_what_to_set(cls):
    device = cls(width=2, capacity=16)
    device.check_length(16)  # exactly enough is fine
    message = (
        f"{cls.__name__} capacity 16 is smaller than the 40 steps it will see; set capacity >= 40"
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        device.check_length(40)


def test_interfaces_and_read_sizes():
    stack = dm.NeuralStack(width=5, capacity=9)
    assert {n: (f.shape, f.activation) for n, f in stack.interface().items()} == {
        "value": ((5,), "tanh"),
        "push": ((), "sigmoid"),
        "pop": ((), "sigmoid"),
    }
    assert stack.read_size == 5 and dm.NeuralQueue(width=5, capacity=9).read_size == 5
    deque = dm.NeuralDeque(width=5, capacity=9)
    assert deque.read_size == 10
    assert deque.interface()["value_bottom"] == dm.Field((5,), "tanh")
    assert deque.interface()["pop_top"] == dm.Field((), "sigmoid")
    joulin = dm.JoulinStack(depth=6, width=3, stacks=2, read_top=2, actions=("push", "pop"))
    assert joulin.interface() == {
        "action": dm.Field((2, 2), "softmax"),
        "value": dm.Field((2, 3), "sigmoid"),
    }
    assert joulin.read_size == 2 * 2 * 3


@pytest.mark.parametrize(
    "make, message",
    [
        (
            lambda: dm.NeuralStack(width=0, capacity=4),
            "NeuralStack width must be a positive integer",
        ),
        (lambda: dm.NeuralQueue(width=2, capacity=-1), "NeuralQueue capacity must be a positive"),
        (lambda: dm.NeuralDeque(width=2.0, capacity=4), "NeuralDeque width must be a positive"),
        (lambda: dm.NeuralStack(width=True, capacity=4), "width must be a positive integer"),
        (lambda: dm.JoulinStack(depth=0), "depth must be a positive integer"),
        (lambda: dm.JoulinStack(depth=4, width=0), "width must be a positive integer"),
        (lambda: dm.JoulinStack(depth=4, stacks=0), "stacks must be a positive integer"),
        (lambda: dm.JoulinStack(depth=4, read_top=0), "read_top must be a positive integer"),
        (lambda: dm.JoulinStack(depth=1), "read_top=2 must be <= depth=1"),
        (lambda: dm.JoulinStack(depth=4, actions=()), "non-empty subset"),
        (lambda: dm.JoulinStack(depth=4, actions=("push", "peek")), "unknown \\['peek'\\]"),
        (lambda: dm.JoulinStack(depth=4, actions=("push", "push")), "must not repeat"),
        (lambda: dm.JoulinStack(depth=4, empty_value=float("nan")), "finite number"),
    ],
)
def test_invalid_specs_say_what_to_fix(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_the_compiler_refuses_sequences_longer_than_a_devices_capacity():
    machine = dm.Machine(
        dm.LSTM(4), {"stack": dm.NeuralStack(width=2, capacity=6)}, halting=dm.Fixed(2)
    )
    model = dm.compile(machine, 3, 2, key=jax.random.PRNGKey(0))
    model(jnp.ones((3, 3)))  # 3 steps x 2 inner steps = 6 fits
    with pytest.raises(
        dm.DifmachineError, match="device 'stack'.*capacity 6 is smaller than the 8"
    ):
        model(jnp.ones((4, 3)))


def test_a_stack_and_ntm_machine_trains_a_few_steps(tmp_path):
    import os

    import optax
    from rich.console import Console

    program = dm.Program(
        machine=dm.Machine(
            dm.LSTM(8),
            {
                "stack": dm.NeuralStack(width=3, capacity=9),
                "memory": dm.NTMMemory(slots=6, width=3),
            },
        ),
        task=dm.Copy(bits=2, max_length=4),
        optimizer=optax.adam(1e-2),
        batch_size=4,
        steps=30,
        eval_every=30,
        eval_samples=64,
    )
    from difmachine.program import build
    from difmachine.training import train

    before = dm.evaluate(build(program), program.task, samples=64, seed=3)["loss"]
    result = train(program, tmp_path / "run", console=Console(file=open(os.devnull, "w")))
    assert result.step == 30 and result.refused == 0
    assert result.metrics["eval_loss"] < before
