package imapi

// BaseURLForTest is the IM API URL the client calls.
func (c *Client) BaseURLForTest() string { return c.base.String() }
