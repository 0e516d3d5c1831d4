# Container and cluster targets: the images, a run in containers, the compiled pipeline, checks of containers/ and infra/.
# Included by the Makefile (include mk/*.mk); `make help` lists the targets marked ##.
VENV ?= .venv
# Image names and tags are derived in optbench/images.py; these only pass choices on.
REGISTRY ?=
IMAGES ?= cpu,gpu
CA_BUNDLE ?=
CLUSTER_CONFIG ?= cluster.yaml

.PHONY: images run-containers pipeline-yaml check-cluster gpu-lock

images: $(STAMP) ## Build the CPU and GPU images (IMAGES=cpu for one), tagged with the git commit; REGISTRY=<repo> pushes them
	$(VENV)/bin/optbench images --targets $(IMAGES) $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(CA_BUNDLE),--ca-bundle $(CA_BUNDLE))

run-containers: $(STAMP) ## Build the CPU image, then run the comparison with every task in its container (RUN_ARGS as for run)
	$(VENV)/bin/optbench images --targets cpu $(if $(CA_BUNDLE),--ca-bundle $(CA_BUNDLE))
	$(VENV)/bin/optbench run --runner docker $(RUN_ARGS)

pipeline-yaml: $(STAMP) ## Compile pipeline.yaml for the cluster from CLUSTER_CONFIG (default cluster.yaml)
	$(VENV)/bin/optbench compile --config $(CLUSTER_CONFIG) --output pipeline.yaml

check-cluster: $(STAMP) ## Lint the Dockerfile (hadolint) and validate infra/ (HCL, Kubernetes schemas, yamllint); make test runs these too
	$(VENV)/bin/python -m pytest -q tests/optbench/test_containers.py tests/infra/test_infra.py

gpu-lock: $(STAMP) ## Re-resolve containers/requirements-gpu.lock (the CUDA wheels of tensorflow[and-cuda]) against requirements.lock
	$(VENV)/bin/pip install -q --dry-run --ignore-installed --report /tmp/optbench-gpu.json -c requirements.lock \
	    "tensorflow[and-cuda]==$$(sed -n 's/^tensorflow==//p' requirements.lock)"
	{ sed -n '/^#/p' containers/requirements-gpu.lock; $(VENV)/bin/python -c "import json; \
	    print('\n'.join(sorted(i['metadata']['name'] + '==' + i['metadata']['version'] for i in \
	    json.load(open('/tmp/optbench-gpu.json'))['install'] if i['metadata']['name'].startswith('nvidia-'))))"; \
	} > containers/requirements-gpu.lock.new && mv containers/requirements-gpu.lock.new containers/requirements-gpu.lock
