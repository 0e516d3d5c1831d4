# Cluster targets (GitHub issue 5): container images, the compiled pipeline, checks of containers/ and infra/.
# Included by the Makefile (include mk/*.mk); `make help` lists the targets marked ##.
VENV ?= .venv
REGISTRY ?=
IMAGE_TAG ?= $(shell git describe --always --dirty --abbrev=12 2>/dev/null || echo dev)
DOCKER ?= docker
CLUSTER_CONFIG ?= cluster.yaml
CPU_IMAGE = $(REGISTRY)/cpu:$(IMAGE_TAG)
GPU_IMAGE = $(REGISTRY)/gpu:$(IMAGE_TAG)

.PHONY: images pipeline-yaml check-cluster gpu-lock

images: ## Build and push the CPU and GPU images (needs Docker and REGISTRY=<Artifact Registry repo>)
	@command -v $(DOCKER) >/dev/null 2>&1 || { echo "make images: '$(DOCKER)' not found: building the images needs a Docker engine, and this machine has none. Run it where Docker is installed (e.g. Cloud Shell or CI)." >&2; exit 1; }
	@$(DOCKER) info >/dev/null 2>&1 || { echo "make images: '$(DOCKER)' is installed but its engine does not answer (is the daemon running?)" >&2; exit 1; }
	@test -n "$(REGISTRY)" || { echo "make images: set REGISTRY, e.g. REGISTRY=\$$(terraform -chdir=infra/terraform output -raw registry)" >&2; exit 1; }
	$(DOCKER) build -f containers/Dockerfile --target cpu -t $(CPU_IMAGE) .
	$(DOCKER) build -f containers/Dockerfile --target gpu -t $(GPU_IMAGE) .
	$(DOCKER) push $(CPU_IMAGE)
	$(DOCKER) push $(GPU_IMAGE)
	@echo "pushed; pin them by digest in cluster.yaml (or --image/--gpu-image):"
	@echo "image: $$($(DOCKER) inspect --format '{{index .RepoDigests 0}}' $(CPU_IMAGE))"
	@echo "gpu_image: $$($(DOCKER) inspect --format '{{index .RepoDigests 0}}' $(GPU_IMAGE))"

pipeline-yaml: $(STAMP) ## Compile pipeline.yaml for the cluster from CLUSTER_CONFIG (default cluster.yaml)
	$(VENV)/bin/optbench compile --config $(CLUSTER_CONFIG) --output pipeline.yaml

check-cluster: $(STAMP) ## Lint the Dockerfile (hadolint) and validate infra/ (HCL, Kubernetes schemas, yamllint); make test runs these too
	$(VENV)/bin/python -m pytest -q tests/test_containers.py tests/test_infra.py

gpu-lock: $(STAMP) ## Re-resolve containers/requirements-gpu.lock (the CUDA wheels of tensorflow[and-cuda]) against requirements.lock
	$(VENV)/bin/pip install -q --dry-run --ignore-installed --report /tmp/optbench-gpu.json -c requirements.lock \
	    "tensorflow[and-cuda]==$$(sed -n 's/^tensorflow==//p' requirements.lock)"
	{ sed -n '/^#/p' containers/requirements-gpu.lock; $(VENV)/bin/python -c "import json; \
	    print('\n'.join(sorted(i['metadata']['name'] + '==' + i['metadata']['version'] for i in \
	    json.load(open('/tmp/optbench-gpu.json'))['install'] if i['metadata']['name'].startswith('nvidia-'))))"; \
	} > containers/requirements-gpu.lock.new && mv containers/requirements-gpu.lock.new containers/requirements-gpu.lock
