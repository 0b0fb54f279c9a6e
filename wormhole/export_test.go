package wormhole

// DropConnection closes the current connection to the server abruptly, as a
// network failure would, so that a test can watch the Wormhole reconnect.
func (w *Wormhole) DropConnection() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.st.conn != nil {
		w.st.conn.CloseNow()
	}
}
