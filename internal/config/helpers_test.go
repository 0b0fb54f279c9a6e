package config

import "slices"

// load reads the configuration file at path the way `icebreaker serve`
// does without flags: Read, then Validate, its error blamed on the file
// and line.
func load(path string) (Config, error) {
	c, src, err := Read(path, nil)
	if err != nil {
		return Config{}, err
	}
	if err := c.Validate(); err != nil {
		return Config{}, src.Blame(err)
	}
	return c, nil
}

// clone returns a deep copy of c.
func clone(c Config) Config {
	c.Listen = slices.Clone(c.Listen)
	c.TLS.Listen = slices.Clone(c.TLS.Listen)
	c.TURN.Users = slices.Clone(c.TURN.Users)
	c.TURN.RESTSecrets = slices.Clone(c.TURN.RESTSecrets)
	c.TURN.RelayIP = slices.Clone(c.TURN.RelayIP)
	c.TURN.ExternalIP = slices.Clone(c.TURN.ExternalIP)
	c.TURN.Policy.AllowPeers = slices.Clone(c.TURN.Policy.AllowPeers)
	c.TURN.Policy.DenyPeers = slices.Clone(c.TURN.Policy.DenyPeers)
	return c
}
