class DatagramTransport: pass
