/// How code outside the engine reads and changes tensors without raw pointers: read-only views of
/// the elements on the host, tensors made from host bytes, and one in-place write (`assign`). A device
/// backend would copy to and from the host here; nothing outside GenTensor writes through a pointer.
extension Tensor {
    /// Calls `body` with the elements, read-only, in row-major order; traps when `T` is not the dtype.
    public func withUnsafeBufferPointer<T: TensorScalar, R>(as type: T.Type,
                                                            _ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: pointer(as: T.self), count: elementCount))
    }

    /// Calls `body` with the elements' bytes, read-only (little-endian, row-major).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(start: storage.pointer, count: elementCount * dtype.byteSize))
    }

    /// A tensor holding a copy of `bytes` (little-endian, row-major), which must be exactly
    /// `shape`'s element count times the dtype's size.
    public convenience init(copying bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType) {
        self.init(uninitializedShape: shape, dtype: dtype)
        precondition(bytes.count == elementCount * dtype.byteSize,
                     "Tensor(copying:): \(bytes.count) bytes for shape \(shape) of \(dtype)")
        if let base = bytes.baseAddress, bytes.count > 0 { storage.pointer.copyMemory(from: base, byteCount: bytes.count) }
    }

    /// Overwrites this tensor's values with `source`'s, in place (same element count and dtype): the
    /// one write that code outside the engine makes (loading state, weight clipping, EMA copies).
    /// Tensors that share storage with this one (its reshapes) see the new values.
    public func assign(_ source: Tensor) {
        precondition(source.elementCount == elementCount && source.dtype == dtype,
                     "assign: \(source.dtype) \(source.shape) into \(dtype) \(shape)")
        if source.storage === storage { return }
        Backend.current.copyRuns(count: 1, length: elementCount, from: source, offset: 0, stride: 0, into: self, offset: 0, stride: 0)
    }
}
