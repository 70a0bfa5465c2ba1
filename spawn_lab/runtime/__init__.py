"""The runtime: ActorSystem, the effect driver, references and the notebook actor API."""
