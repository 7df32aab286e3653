"""SGD and AdamW against torch's (golden file made by golden/make_optim_golden.py),
Keras 3's SGD, NumPy transcriptions, hand-computed steps, checkpoints, skipped
loss-scaling steps and replicas."""
import itertools
import json
import os

import keras
import numpy as np
import tensorflow as tf
from absl.testing import parameterized

from core import precision, schedules
from core.optim import SGD, AdamW, adamw_update, make_optimizer, sgd_momentum_update
from tests.distribute import two_replica_strategy

STEPS = 10
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden", "optim_golden.json")
# Also holds torch.optim.SGD's two steps under a changing learning rate.
SCHEDULES_GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden",
                                "schedules_golden.json")


def _golden() -> dict:
    with open(GOLDEN, encoding="utf-8") as f:
        return json.load(f)


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((6, 3)).astype(np.float32)
    target = rng.standard_normal((6, 4)).astype(np.float32)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    b0 = rng.standard_normal((4,)).astype(np.float32)
    return a, target, w0, b0


def _loss(a, target, w, b):
    return tf.reduce_mean(tf.square(tf.matmul(a, w) + b - target))


def _grads(a, target, w, b):
    with tf.GradientTape() as tape:
        loss = _loss(a, target, w, b)
    return tape.gradient(loss, [w, b])


class SGDTest(tf.test.TestCase, parameterized.TestCase):

    @parameterized.parameters(itertools.product([False, True], [0.0, 0.05], [False, True]))
    def test_matches_keras_sgd(self, nesterov, weight_decay, only_kernel):
        a, target, w0, b0 = _problem()
        w, b = tf.Variable(w0), tf.Variable(b0)
        kw, kb = tf.Variable(w0), tf.Variable(b0)
        ours = SGD(0.1, momentum=0.9, nesterov=nesterov, weight_decay=weight_decay)
        theirs = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=nesterov,
                                      weight_decay=weight_decay or None)
        decay = [w] if only_kernel else None
        if only_kernel:
            theirs.exclude_from_weight_decay(var_list=[kb])
        step = tf.function(lambda: ours.apply(_grads(a, target, w, b), [w, b],
                                              decay_variables=decay))
        for _ in range(STEPS):
            step()
            theirs.apply(_grads(a, target, kw, kb), [kw, kb])
        self.assertAllClose(w, kw, rtol=1e-6, atol=1e-6)
        self.assertAllClose(b, kb, rtol=1e-6, atol=1e-6)
        self.assertEqual(int(ours.iterations), STEPS)
        self.assertNotAllClose(w, w0)  # the run did move

    def test_variable_schedule_against_numpy(self):
        """lr and momentum assigned every step, checked against the formula."""
        a, target, w0, b0 = _problem(1)
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = SGD(0.05, momentum=0.8, nesterov=True, weight_decay=0.01)
        p = [w0.astype(np.float64), b0.astype(np.float64)]
        v = [np.zeros_like(p[0]), np.zeros_like(p[1])]
        for i in range(5):
            lr, mu = 0.05 * (i + 1), 0.95 - 0.02 * i
            opt.learning_rate.assign(lr)
            opt.momentum.assign(mu)
            grads = _grads(a, target, tf.Variable(p[0], dtype=tf.float32),
                           tf.Variable(p[1], dtype=tf.float32))
            opt.apply(_grads(a, target, w, b), [w, b], decay_variables=[w])
            for j, g in enumerate(grads):
                decay = 0.01 if j == 0 else 0.0
                q = p[j] - lr * decay * p[j]
                v[j] = mu * v[j] - lr * g.numpy()
                p[j] = q + mu * v[j] - lr * g.numpy()
        self.assertAllClose(w, p[0], rtol=1e-5, atol=1e-6)
        self.assertAllClose(b, p[1], rtol=1e-5, atol=1e-6)

    def test_pure_update_by_hand(self):
        new_p, new_v = sgd_momentum_update(
            tf.constant(2.0), tf.constant(0.5), tf.constant(1.0),
            tf.constant(0.1), tf.constant(0.9), 0.1, nesterov=False)
        # p1 = 2 - 0.1*0.1*2 = 1.98; v' = 0.9 - 0.05 = 0.85; p' = 2.83
        self.assertAllClose([new_p, new_v], [2.83, 0.85])
        new_p, _ = sgd_momentum_update(
            tf.constant(2.0), tf.constant(0.5), tf.constant(1.0),
            tf.constant(0.1), tf.constant(0.9), 0.0, nesterov=True)
        self.assertAllClose(new_p, 2.0 + 0.9 * 0.85 - 0.05)

    def test_changing_lr_differs_from_torch_sgd_by_hand(self):
        """p = 1, m = 0.9; step 1: a = 0.1, g = 1; step 2: a = 0.2, g = 0.5.
        Keras-style (ours): v1 = -0.1, p1 = 0.9; v2 = -0.09 - 0.1 = -0.19,
        p2 = 0.71. torch: b1 = 1, p1 = 0.9; b2 = 0.9 + 0.5 = 1.4,
        p2 = 0.9 - 0.2 * 1.4 = 0.62. The gap is m g1 (a2 - a1) = 0.09."""
        p = tf.Variable([1.0], dtype=tf.float64)
        opt = SGD(0.1, momentum=0.9)
        got = []
        for lr, grad in ((0.1, 1.0), (0.2, 0.5)):
            opt.learning_rate.assign(lr)
            opt.apply([tf.constant([grad], tf.float64)], [p])
            got.append(float(p[0]))
        self.assertAllClose(got, [0.9, 0.71])
        # torch.optim.SGD's parameters on the same steps (the golden file).
        with open(SCHEDULES_GOLDEN, encoding="utf-8") as f:
            torch_run = json.load(f)["sgd_lr_change"]
        self.assertEqual((torch_run["lrs"], torch_run["grads"]), ([0.1, 0.2], [1.0, 0.5]))
        self.assertAllClose(torch_run["params"], [0.9, 0.62])
        self.assertAllClose(got[1] - torch_run["params"][1], 0.9 * 1.0 * (0.2 - 0.1))

    def test_checkpoint_restores_slots_and_continues_identically(self):
        a, target, w0, b0 = _problem(2)
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = SGD(0.1, momentum=0.9)
        for _ in range(3):
            opt.apply(_grads(a, target, w, b), [w, b])
        path = tf.train.Checkpoint(w=w, b=b, opt=opt).save(self.get_temp_dir() + "/c")
        for _ in range(3):
            opt.apply(_grads(a, target, w, b), [w, b])
        # Fresh optimizer, slots not built yet: restore is deferred until
        # the first apply creates them (inside a tf.function here).
        w2, b2 = tf.Variable(tf.zeros_like(w0)), tf.Variable(tf.zeros_like(b0))
        opt2 = SGD(0.5, momentum=0.5)
        tf.train.Checkpoint(w=w2, b=b2, opt=opt2).restore(path)
        self.assertEqual(int(opt2.iterations), 3)
        self.assertAllClose(opt2.learning_rate, 0.1)
        step = tf.function(lambda: opt2.apply(_grads(a, target, w2, b2), [w2, b2]))
        for _ in range(3):
            step()
        self.assertAllClose(w2, w, rtol=1e-6, atol=1e-7)
        self.assertAllClose(b2, b, rtol=1e-6, atol=1e-7)

    def test_finite_false_skips_the_update(self):
        w = tf.Variable([1.0, 2.0])
        opt = SGD(0.1, momentum=0.9)
        opt.apply([tf.constant([1.0, 1.0])], [w], finite=tf.constant(True))
        before = (w.numpy(), opt.velocity[0].numpy())
        opt.apply([tf.constant([np.inf, 1.0])], [w], finite=tf.constant(False))
        self.assertAllEqual(w, before[0])
        self.assertAllEqual(opt.velocity[0], before[1])
        self.assertEqual(int(opt.iterations), 2)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "momentum must be in"):
            SGD(0.1, momentum=1.5)
        opt = SGD(0.1)
        w, other = tf.Variable([1.0]), tf.Variable([2.0])
        opt.apply([tf.constant([1.0])], [w])
        with self.assertRaisesRegex(ValueError, "not among the variables"):
            opt.apply([tf.constant([1.0])], [other])
        with self.assertRaisesRegex(ValueError, "1 gradients for 2 variables"):
            opt.apply([tf.constant([1.0])], [w, other])

    @parameterized.parameters("sgd", "adamw")
    def test_two_replica_mirrored_strategy_equals_one_device(self, name):
        strategy = two_replica_strategy()
        a, target, w0, b0 = _problem(3)
        make = lambda: make_optimizer(name, 0.1 if name == "sgd" else 0.01,  # noqa: E731
                                      nesterov=name == "sgd", weight_decay=0.01)
        # Reference: one device, the whole batch, mean loss.
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = make()
        for _ in range(4):
            opt.apply(_grads(a, target, w, b), [w, b], decay_variables=[w])
        with strategy.scope():
            mw, mb = tf.Variable(w0), tf.Variable(b0)
            mopt = make()
        halves = np.split(a, 2), np.split(target, 2)
        inputs = strategy.experimental_distribute_values_from_function(
            lambda ctx: (tf.constant(halves[0][ctx.replica_id_in_sync_group]),
                         tf.constant(halves[1][ctx.replica_id_in_sync_group])))

        def replica_step(a_part, target_part):
            with tf.GradientTape() as tape:
                # Per-replica mean / replicas: the summed gradient is the global mean's.
                loss = _loss(a_part, target_part, mw, mb) / 2.0
            grads = tape.gradient(loss, [mw, mb])
            # `finite` as a replica-local tensor, as DynamicLossScale.unscale makes it.
            mopt.apply(grads, [mw, mb], decay_variables=[mw], finite=tf.constant(True))

        @tf.function
        def step(inputs):
            strategy.run(replica_step, args=inputs)

        for _ in range(4):
            step(inputs)
        self.assertAllClose(mw.values[0], w, rtol=1e-5, atol=1e-6)
        self.assertAllClose(mw.values[1], w, rtol=1e-5, atol=1e-6)
        self.assertAllClose(mb.values[1], b, rtol=1e-5, atol=1e-6)
        self.assertEqual(int(mopt.iterations.numpy()), 4)
        slot = mopt.velocity[0] if name == "sgd" else mopt.v[0]
        self.assertIsInstance(slot, tf.distribute.DistributedValues)
        self.assertNotAllClose(w, w0)

class TorchGoldenTest(tf.test.TestCase, parameterized.TestCase):
    """core.optim replays the golden file's gradients and lands on torch's
    parameters after every step (float32 round-off apart)."""

    def _replay(self, case, opt, golden, grad_fn=None, before_step=None, atol=1e-7):
        w = tf.Variable(golden["initial"]["w"], dtype=tf.float32)
        b = tf.Variable(golden["initial"]["b"], dtype=tf.float32)
        apply = tf.function(lambda gw, gb: opt.apply([gw, gb], [w, b], decay_variables=[w]))
        for step, (g, want) in enumerate(zip(golden["grads"], case["params"])):
            if before_step:
                before_step(step)
            gw, gb = np.float32(g["w"]), np.float32(g["b"])
            if grad_fn:
                gw, gb = grad_fn(w.numpy(), gw), gb
            apply(tf.constant(gw), tf.constant(gb))
            self.assertAllClose(w, want["w"], rtol=1e-6, atol=atol, msg=f"w, step {step + 1}")
            self.assertAllClose(b, want["b"], rtol=1e-6, atol=atol, msg=f"b, step {step + 1}")
        self.assertNotAllClose(w, golden["initial"]["w"], atol=1e-3)  # the run did move

    @parameterized.parameters("adamw_constant", "adamw_changing", "adamw_one_cycle")
    def test_adamw_matches_torch(self, name):
        golden = _golden()
        case, hyper = golden["cases"][name], golden["cases"][name]["hyper"]
        opt = AdamW(hyper["lr"], beta_1=hyper["betas"][0], beta_2=hyper["betas"][1],
                    epsilon=hyper["eps"], weight_decay=hyper["weight_decay"])

        def before_step(step):  # torch's lr and beta_1 of this step
            opt.learning_rate.assign(case["lrs"][step])
            if "beta_1s" in case:
                opt.momentum.assign(case["beta_1s"][step])

        self._replay(case, opt, golden, before_step=before_step)
        self.assertEqual(int(opt.updates), golden["steps"])

    def test_adamw_under_our_one_cycle_matches_torch_one_cycle_lr(self):
        """core.schedules.one_cycle drives lr and beta_1 (through `momentum`)
        as torch's OneCycleLR(cycle_momentum=True) drives AdamW."""
        golden = _golden()
        case = golden["cases"]["adamw_one_cycle"]
        hyper, cyc = case["hyper"], case["hyper"]["one_cycle"]
        opt = make_optimizer("adamw", 1.0, beta_2=hyper["betas"][1], epsilon=hyper["eps"],
                             weight_decay=hyper["weight_decay"])

        def before_step(step):
            lr, momentum = schedules.one_cycle(
                tf.constant(step, tf.int64), cyc["total_steps"], cyc["max_lr"],
                pct_start=cyc["pct_start"], div_factor=cyc["div_factor"],
                final_div_factor=cyc["final_div_factor"], anneal="cos",
                base_momentum=cyc["base_momentum"], max_momentum=cyc["max_momentum"])
            self.assertAllClose(lr, case["lrs"][step], rtol=1e-6)
            self.assertAllClose(momentum, case["beta_1s"][step], rtol=1e-6)
            opt.learning_rate.assign(lr)
            opt.momentum.assign(momentum)

        self._replay(case, opt, golden, before_step=before_step)
        self.assertAllClose(opt.beta_1, case["beta_1s"][-1])

    @parameterized.parameters("sgd_momentum", "sgd_nesterov", "sgd_nesterov_l2")
    def test_sgd_matches_torch_at_constant_lr(self, name):
        golden = _golden()
        case, hyper = golden["cases"][name], golden["cases"][name]["hyper"]
        opt = SGD(hyper["lr"], momentum=hyper["momentum"], nesterov=hyper["nesterov"])
        l2 = hyper["l2_weight_decay"]
        # torch's SGD weight_decay is L2 (g + wd p), not our decoupled decay:
        # fed through the gradient it is reproduced exactly.
        # atol: Keras' v = m v - lr g, p += v rounds differently from torch's
        # buf = m buf + g, p -= lr buf; one float32 ulp of |p| < 4 is 2.4e-7.
        self._replay(case, opt, golden, atol=2.5e-7,
                     grad_fn=(lambda p, g: g + np.float32(l2) * p) if l2 else None)

    def test_golden_file_records_its_maker(self):
        golden = _golden()
        self.assertTrue(golden["torch_version"].startswith("2."))
        self.assertLen(golden["grads"], golden["steps"])
        for case in golden["cases"].values():
            self.assertLen(case["params"], golden["steps"])


class AdamWTest(tf.test.TestCase, parameterized.TestCase):

    def test_pure_update_by_hand(self):
        # t=1 from zero moments: m'=0.05, v'=0.00025, m_hat=0.5, sqrt(v_hat)=0.5,
        # p1 = 2(1 - 0.1*0.1) = 1.98, p' = 1.98 - 0.1*0.5/(0.5 + 1e-8) = 1.88.
        p, m, v = adamw_update(tf.constant(2.0), tf.constant(0.5), tf.constant(0.0),
                               tf.constant(0.0), tf.constant(0.1), 0.9, 0.999, 1e-8,
                               0.1, tf.constant(1, tf.int64))
        self.assertAllClose([p, m, v], [1.88, 0.05, 0.00025], rtol=1e-6)
        # t=2, b1 a tensor: m' = 0.8*0.5 - 0.2 = 0.2, v' = 0.09 + 0.1 = 0.19,
        # 1-b1^2 = 0.36, 1-b2^2 = 0.19, denom = sqrt(0.19/0.19) + 0.1 = 1.1,
        # p' = 1 - 0.01/0.36 * 0.2/1.1 = 1 - 0.002/0.396.
        p, m, v = adamw_update(tf.constant(1.0), tf.constant(-1.0), tf.constant(0.5),
                               tf.constant(0.1), tf.constant(0.01), tf.constant(0.8), 0.9,
                               0.1, 0.0, tf.constant(2, tf.int64))
        self.assertAllClose([p, m, v], [1.0 - 0.002 / 0.396, 0.2, 0.19], rtol=1e-6)

    def test_against_numpy_with_changing_lr_and_beta_1(self):
        """Float64 NumPy transcription of the docstring, decay on w only."""
        a, target, w0, b0 = _problem(4)
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = AdamW(0.01, beta_2=0.99, epsilon=1e-4, weight_decay=0.05)
        p = [w0.astype(np.float64), b0.astype(np.float64)]
        m = [np.zeros_like(x) for x in p]
        v = [np.zeros_like(x) for x in p]
        for t in range(1, 7):
            lr, b1 = 0.01 * t, 0.95 - 0.02 * t
            opt.learning_rate.assign(lr)
            opt.momentum.assign(b1)
            grads = _grads(a, target, tf.Variable(p[0], dtype=tf.float32),
                           tf.Variable(p[1], dtype=tf.float32))
            opt.apply(_grads(a, target, w, b), [w, b], decay_variables=[w])
            for j, g in enumerate(grads):
                g = g.numpy().astype(np.float64)
                p[j] = p[j] * (1 - lr * (0.05 if j == 0 else 0.0))
                m[j] = b1 * m[j] + (1 - b1) * g
                v[j] = 0.99 * v[j] + 0.01 * g * g
                denom = np.sqrt(v[j]) / np.sqrt(1 - 0.99 ** t) + 1e-4
                p[j] = p[j] - lr / (1 - b1 ** t) * m[j] / denom
        self.assertAllClose(w, p[0], rtol=1e-5, atol=1e-6)
        self.assertAllClose(b, p[1], rtol=1e-5, atol=1e-6)
        self.assertAllClose(opt.m[0], m[0], rtol=1e-5, atol=1e-6)

    def test_skipped_steps_leave_state_and_bias_correction_alone(self):
        """With the float16 loss scaler: a step with an inf gradient changes
        nothing but `iterations`; the run equals one without that step."""
        grads = [np.float32([0.5, -1.0]), np.float32([np.inf, 1.0]), np.float32([2.0, 0.1])]
        w, ref = tf.Variable([1.0, 2.0]), tf.Variable([1.0, 2.0])
        opt, ref_opt = AdamW(0.1), AdamW(0.1)
        scaler = precision.DynamicLossScale(initial_scale=2.0 ** 10)

        @tf.function
        def step(g):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(w * g)  # d loss / d w = g
                scaled = scaler.scale_loss(loss)
            unscaled, finite = scaler.unscale(tape.gradient(scaled, [w]))
            opt.apply(unscaled, [w], finite=finite)
            scaler.update(finite)
            return finite

        finites = [bool(step(tf.constant(g))) for g in grads]
        self.assertEqual(finites, [True, False, True])
        for g in (grads[0], grads[2]):
            ref_opt.apply([tf.constant(g)], [ref])
        self.assertAllClose(w, ref, rtol=1e-6)
        self.assertAllClose(opt.v[0], ref_opt.v[0], rtol=1e-6)
        self.assertEqual((int(opt.iterations), int(opt.updates)), (3, 2))
        self.assertAllEqual(scaler.scale, 2.0 ** 9)

    def test_checkpoint_restores_slots_and_continues_identically(self):
        a, target, w0, b0 = _problem(5)
        w, b = tf.Variable(w0), tf.Variable(b0)
        opt = AdamW(0.01, weight_decay=0.1)
        opt.momentum.assign(0.85)
        for _ in range(3):
            opt.apply(_grads(a, target, w, b), [w, b], decay_variables=[w])
        path = tf.train.Checkpoint(w=w, b=b, opt=opt).save(self.get_temp_dir() + "/c")
        for _ in range(3):
            opt.apply(_grads(a, target, w, b), [w, b], decay_variables=[w])
        # Fresh optimizer, slots not built: restored when the first apply makes them.
        w2, b2 = tf.Variable(tf.zeros_like(w0)), tf.Variable(tf.zeros_like(b0))
        opt2 = AdamW(0.5, weight_decay=0.1)
        tf.train.Checkpoint(w=w2, b=b2, opt=opt2).restore(path)
        self.assertEqual((int(opt2.iterations), int(opt2.updates)), (3, 3))
        self.assertAllClose([opt2.learning_rate, opt2.beta_1], [0.01, 0.85])
        step = tf.function(lambda: opt2.apply(_grads(a, target, w2, b2), [w2, b2],
                                              decay_variables=[w2]))
        for _ in range(3):
            step()
        self.assertAllClose(w2, w, rtol=1e-6, atol=1e-7)
        self.assertAllClose(b2, b, rtol=1e-6, atol=1e-7)
        self.assertAllClose(opt2.v[1], opt.v[1], rtol=1e-6, atol=1e-12)

    def test_half_precision_variable_gets_float32_slots(self):
        w = tf.Variable(tf.constant([1.0, -1.0], tf.bfloat16))
        opt = AdamW(0.1, weight_decay=0.0)
        opt.apply([tf.constant([1e-3, -1e-3], tf.bfloat16)], [w])
        self.assertEqual((opt.m[0].dtype, opt.v[0].dtype), (tf.float32, tf.float32))
        self.assertEqual(w.dtype, tf.bfloat16)
        # First Adam step moves each weight by lr against its gradient's sign.
        self.assertAllClose(tf.cast(w, tf.float32), [0.9, -0.9], atol=1e-2)

    def test_make_optimizer_defaults_and_errors(self):
        adamw, sgd = make_optimizer("adamw", 1e-3, momentum=0.85), make_optimizer("sgd", 0.1)
        self.assertIsInstance(adamw, AdamW)
        self.assertEqual((adamw.weight_decay, sgd.weight_decay), (0.01, 0.0))
        self.assertIs(adamw.momentum, adamw.beta_1)
        self.assertAllClose(adamw.beta_1, 0.85)
        self.assertEqual(make_optimizer("adamw", 1e-3, weight_decay=0.0).weight_decay, 0.0)
        with self.assertRaisesRegex(ValueError, "nesterov=True is an SGD option"):
            make_optimizer("adamw", 1e-3, nesterov=True)
        with self.assertRaisesRegex(ValueError, "unknown optimizer 'adam'"):
            make_optimizer("adam", 1e-3)
        with self.assertRaisesRegex(ValueError, "beta_2 must be in"):
            AdamW(1e-3, beta_2=1.0)
        with self.assertRaisesRegex(ValueError, "AdamW.apply: 1 gradients for 2 variables"):
            adamw.apply([tf.constant(1.0)], [tf.Variable(1.0), tf.Variable(2.0)])


if __name__ == "__main__":
    tf.test.main()
