// Throws as it starts.
throw new RangeError('at the top');
