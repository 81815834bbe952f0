package image

import (
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestBufPipeBorrow: bytes lent in place keep their buffer from being
// refilled until every part is released and the pipe has read past it,
// in either order; Read after a borrow goes on from the right byte.
func TestBufPipeBorrow(t *testing.T) {
	p := newBufPipe(2)
	var returned []int // the buffers given back to the producer, in order
	for i := 0; i < 2; i++ {
		b := make([]byte, 8)
		for j := range b {
			b[j] = byte(i*8 + j)
		}
		require.NoError(t, p.send(pipeBuf{b: b, release: func() { returned = append(returned, i) }}))
	}
	p.closeWrite(io.EOF)

	require.Equal(t, 8, p.avail())
	one := make([]byte, 1)
	_, err := p.Read(one) // a copied byte before the lent ones
	require.NoError(t, err)
	a, relA := p.borrow(3)
	b, relB := p.borrow(4)
	assert.Equal(t, []byte{1, 2, 3}, a)
	assert.Equal(t, []byte{4, 5, 6, 7}, b)
	assert.Equal(t, 3, cap(a), "a lent slice must not reach into the next one")

	// The pipe moves on to the second buffer: the first is still lent.
	require.Equal(t, 8, p.avail())
	assert.Empty(t, returned, "a lent buffer went back to the producer")
	relB()
	assert.Empty(t, returned, "a buffer went back with a part still lent")
	relA()
	assert.Equal(t, []int{0}, returned, "the buffer did not go back once all was released")

	// Release before the pipe has read past the buffer: it stays until then.
	c, relC := p.borrow(8)
	assert.Equal(t, byte(8), c[0])
	relC()
	assert.Equal(t, []int{0}, returned, "the buffer went back while the pipe still held it")
	assert.Equal(t, 0, p.avail(), "the stream has ended")
	assert.Equal(t, []int{0, 1}, returned)
}
