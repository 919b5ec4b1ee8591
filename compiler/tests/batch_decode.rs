//! Batched decoding on the real models: sequences of different lengths in
//! their own KV slots decode together, one batched step per token, and each
//! greedy continuation equals the same prompt run alone in the batch model,
//! token for token (SmolLM2, and Gemma 3 with its sliding-window layers and
//! two RoPE bases). A sequence that joins between steps (continuous
//! batching) and a slot reused by a new sequence are covered too; and the
//! batched logits stay close to the one-sequence `forward` path's.

use flexc::cli::run::prepare;
use flexc::generate::batch::BatchModel;
use flexc::generate::cpu::CpuModel;
use flexc::generate::sampler::argmax;
use flexc::generate::{prompt_ids, LanguageModel};
use flexc_testsuite::cached;

const PROMPTS: &[&str] = &["The capital of France is", "Once upon a time, in a land far away, there lived", "1, 2, 3,", "def fibonacci(n):"];
const STEPS: usize = 12;

fn alone(m: &mut CpuModel, ids: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut logits = m.prefill(0, ids, 0).unwrap();
    for i in 0..STEPS {
        let t = argmax(&logits);
        out.push(t);
        logits = m.decode(&[(0, t, ids.len() + i)]).unwrap();
    }
    out
}

fn check(rel: &str) {
    let Some(path) = cached(rel) else { return };
    let p = prepare(Some(path.to_str().unwrap()), 256, Some("cpu"), None).expect("prepare");
    let ids: Vec<Vec<u32>> = PROMPTS.iter().map(|t| prompt_ids(&p.tok, t)).collect();
    let want: Vec<Vec<u32>> = ids.iter().map(|i| alone(&mut CpuModel::new(&p.module, 2).unwrap().with_slots(1), i)).collect();
    // Against the one-sequence path: the same first token, logits within rounding of the GEMV's order.
    let mut one = CpuModel::new(&p.module, 2).unwrap();
    let mut b = CpuModel::new(&p.module, 2).unwrap().with_slots(1);
    let (l1, lb) = (one.forward(&ids[0], 0, 1).unwrap(), b.prefill(0, &ids[0], 0).unwrap());
    assert_eq!(l1, lb, "prefill is the same call");
    let t = argmax(&l1);
    let (l1, lb) = (one.forward(&[t], ids[0].len(), 1).unwrap(), b.decode(&[(0, t, ids[0].len())]).unwrap());
    let scale = l1.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = l1.iter().zip(&lb).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    eprintln!("{rel}: decode logits, batched vs one-sequence: max |diff| {diff} (max |logit| {scale})");
    assert!(diff <= 0.1 * scale, "{rel}: batched logits differ by {diff} (scale {scale})");

    let mut m = CpuModel::new(&p.module, 2).unwrap().with_slots(3);
    assert_eq!(m.slots(), 3);
    // Slots 0..3 hold prompts 0..3; prompt 3 joins slot 0 after prompt 0 finishes.
    struct Seq {
        slot: usize,
        prompt: usize,
        pos: usize,
        next: u32,
        got: Vec<u32>,
    }
    let start = |m: &mut CpuModel, slot: usize, prompt: usize| {
        let logits = m.prefill(slot, &ids[prompt], 0).unwrap();
        Seq { slot, prompt, pos: ids[prompt].len(), next: argmax(&logits), got: Vec::new() }
    };
    let mut active: Vec<Seq> = (0..2).map(|k| start(&mut m, k, k)).collect();
    let mut done: Vec<Seq> = Vec::new();
    let mut step = 0;
    while !active.is_empty() {
        // Prompt 2 joins at step 3 (continuous batching).
        if step == 3 {
            active.push(start(&mut m, 2, 2));
        }
        let rows: Vec<(usize, u32, usize)> = active.iter().map(|s| (s.slot, s.next, s.pos)).collect();
        let logits = m.decode(&rows).unwrap();
        for (r, s) in active.iter_mut().enumerate() {
            s.got.push(s.next);
            s.pos += 1;
            let v = BatchModel::vocab(&m);
            s.next = argmax(&logits[r * v..(r + 1) * v]);
        }
        let (fin, keep): (Vec<Seq>, Vec<Seq>) = active.into_iter().partition(|s| s.got.len() == STEPS);
        active = keep;
        for s in fin {
            // Prompt 3 reuses the slot of the first sequence to finish.
            if s.prompt == 0 {
                active.push(start(&mut m, s.slot, 3));
            }
            done.push(s);
        }
        step += 1;
    }
    assert_eq!(done.len(), 4);
    for s in &done {
        assert_eq!(s.got, want[s.prompt], "{rel}: prompt {:?} batched differs from alone", PROMPTS[s.prompt]);
    }
}

#[test]
fn smollm2_batched_equals_alone() {
    check("models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn gemma3_batched_equals_alone() {
    check("models/gemma3-270m/gemma-3-270m-q4_k_m.gguf");
}
