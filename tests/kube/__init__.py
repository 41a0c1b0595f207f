"""A Kubernetes API test server (``apiserver.FakeCluster``) and the tests that pin its behaviour."""
